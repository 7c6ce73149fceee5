"""docs/guarantees.md, battery item 7 (PostgreSQL): database faults while workers execute runs.

* Every connection of the workers is killed again and again
  (``pg_terminate_backend`` on the backends whose ``application_name`` is this
  test's, so no other client of the server is touched): pooled connections, the
  heartbeat's, the LISTEN connection. Workers reconnect; every run completes and
  every step runs exactly once (no worker died, so no re-run is allowed at all).
* The server itself is restarted mid-run (``pg_ctlcluster ... restart``, marked
  slow: it disturbs every other client of the server): the same.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from tests.acceptance.pg_harness import (
    Schema,
    Worker,
    check_steps,
    clean_stderr,
    connect,
    ensure_up,
    local_cluster,
    restart_server,
    terminate_workers,
    wait_all_terminal,
)
from tests.postgres import URL as POSTGRES_URL

LEASE, POLL = 2.0, 0.2
#: What a worker may log about a fault it recovered from.
EXPECTED_NOISE = ("transient failure", "LISTEN connection lost", "reconnect")


def _plan(
    count: int, seed: int, ms: tuple[int, int] = (20, 120)
) -> dict[str, tuple[str, list[int]]]:
    rng = random.Random(seed)
    return {
        f"fault-{i:03d}": (
            "pg.chain" if i % 2 else "pg.chain_async",
            [rng.randint(*ms) for _ in range(rng.randint(3, 5))],
        )
        for i in range(count)
    }


def _start(schema: Schema, plan: dict[str, tuple[str, list[int]]], seconds: float) -> None:
    with schema.client() as client:
        for run_id, (workflow, delays) in plan.items():
            client.with_options(run_id=run_id).start_workflow(workflow, run_id, delays)
            time.sleep(seconds / len(plan))


def _judge(schema: Schema, plan: dict[str, tuple[str, list[int]]], pool: list[Worker]) -> None:
    wait_all_terminal(schema, plan, timeout=60)
    expected = {r: [f"s{i}" for i in range(1, len(d) + 1)] for r, (_, d) in plan.items()}
    verdict = check_steps(schema, expected, killed=set())
    assert not verdict.problems, "\n".join(verdict.problems[:20])
    assert not verdict.reruns, f"no worker died, yet steps ran twice: {verdict.reruns[:10]}"
    for w in pool:
        assert w.alive(), w.describe()
        assert not clean_stderr(w, EXPECTED_NOISE), w.describe()


def test_killed_connections_lose_and_double_nothing(schema: Schema, workers: list[Worker]) -> None:
    pool = [Worker(schema, name=f"w{i}", lease=LEASE, poll=POLL) for i in range(3)]
    workers += pool
    for w in pool:
        w.wait_ready()
    plan = _plan(120, seed=5)
    starter = threading.Thread(target=_start, args=(schema, plan, 6.0))
    starter.start()
    rng = random.Random(11)
    killed, rounds = 0, 0
    until = time.monotonic() + 8.0
    while time.monotonic() < until:
        time.sleep(rng.uniform(0.2, 0.7))
        killed += terminate_workers(schema)
        rounds += 1
    starter.join()
    print(f"\n{rounds} rounds of pg_terminate_backend killed {killed} worker connections")
    assert killed >= rounds, "every round should have found connections to kill"
    _judge(schema, plan, pool)
    warned = sum(w.stderr.count("transient failure") for w in pool)
    print(f"workers logged {warned} transient failures and recovered from all")


@pytest.mark.slow
def test_a_server_restart_loses_and_doubles_nothing(schema: Schema, workers: list[Worker]) -> None:
    cluster = local_cluster()
    if cluster is None:
        pytest.skip(
            "pg_ctlcluster/pg_lsclusters not available, or no local cluster serves "
            f"{POSTGRES_URL}: cannot restart the server"
        )
    try:
        pool = [Worker(schema, name=f"w{i}", lease=LEASE, poll=POLL) for i in range(2)]
        workers += pool
        for w in pool:
            w.wait_ready()
        plan = _plan(60, seed=7, ms=(200, 400))  # about 5 s of work for the two workers
        _start(schema, plan, 1.0)  # the client is closed before the restart: workers see it
        time.sleep(0.5)
        before = {r["status"] for r in schema.runs().values()}
        took = restart_server(cluster)
        print(f"\nserver restarted in {took:.1f}s; runs then: {before}")
        assert "running" in before or "pending" in before, "the restart should hit live work"
        _judge(schema, plan, pool)
    finally:
        ensure_up(cluster)


def test_the_test_connection_survives(schema: Schema) -> None:
    """The killer spares everything that is not this test's workers (the test's own
    connection among them)."""
    with connect() as conn:
        assert terminate_workers(schema, conn) == 0
        assert conn.execute("SELECT 1").fetchone() == (1,)

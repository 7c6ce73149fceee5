"""Queue limits and routing with several worker processes on one PostgreSQL schema.

The queues are declared in :mod:`tests.acceptance.pg_app` (every worker imports it):
``pg_conc`` (concurrency 3), ``pg_part`` (partition_concurrency 1), ``pg_rate``
(5 starts per second). Executions are read from the effect log: a run's step
interval lies inside its claim-to-finish interval, so overlapping step intervals
never exceed the runs really executing at once.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from tests.acceptance.effects import (
    executions,
    read_effects,
)
from tests.acceptance.pg_harness import (
    Schema,
    Worker,
    backend_cpu_seconds,
    clean_stderr,
    max_overlap,
    wait_all_terminal,
    wait_until,
)

LEASE, POLL = 2.0, 0.2


def _pool(schema: Schema, workers: list[Worker], n: int = 4) -> list[Worker]:
    pool = [Worker(schema, name=f"w{i}", lease=LEASE, poll=POLL) for i in range(n)]
    workers.extend(pool)
    for w in pool:
        w.wait_ready()
    return pool


def _intervals(schema: Schema) -> dict[str, tuple[float, float, int]]:
    """Run tag -> (start, end, pid) of its one ``work`` step."""
    out = {}
    for (run, _), runs in executions(read_effects(schema.effects)).items():
        (x,) = runs  # no worker dies here: one execution each
        assert x.end is not None
        out[run] = (x.start, x.end, x.pid)
    return out


def test_global_concurrency_holds_across_workers(schema: Schema, workers: list[Worker]) -> None:
    pool = _pool(schema, workers)
    ids = [f"conc-{i}" for i in range(24)]
    with schema.client() as client:
        for run_id in ids:
            client.with_options(run_id=run_id, queue="pg_conc").start_workflow(
                "pg.work", run_id, 300
            )
    wait_all_terminal(schema, ids, timeout=40)
    spans = _intervals(schema)
    peak = max_overlap((s, e) for s, e, _ in spans.values())
    pids = {pid for _, _, pid in spans.values()}
    print(f"\nconcurrency 3: peak {peak} at once, executed by {len(pids)} workers")
    assert peak <= 3, "the queue's global concurrency was exceeded"
    assert peak == 3, "the limit should be used fully"
    assert len(pids) >= 2, "several workers should have taken part"
    for w in pool:
        assert not clean_stderr(w), w.describe()


def test_partition_concurrency_is_one_per_key(schema: Schema, workers: list[Worker]) -> None:
    _pool(schema, workers)
    keys = {f"part-{k}-{i}": f"customer-{k}" for k in range(3) for i in range(5)}
    with schema.client() as client:
        for run_id, key in keys.items():
            client.with_options(run_id=run_id, queue="pg_part", partition_key=key).start_workflow(
                "pg.work", run_id, 200
            )
    wait_all_terminal(schema, keys, timeout=40)
    spans = _intervals(schema)
    per_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run_id, (s, e, _) in spans.items():
        per_key[keys[run_id]].append((s, e))
    peaks = {key: max_overlap(iv) for key, iv in per_key.items()}
    overall = max_overlap((s, e) for s, e, _ in spans.values())
    print(f"\npartition_concurrency 1: per key peaks {peaks}, all keys together {overall}")
    assert all(p == 1 for p in peaks.values()), peaks
    assert overall > 1, "different keys should run side by side"


def test_rate_limit_holds_across_workers(schema: Schema, workers: list[Worker]) -> None:
    _pool(schema, workers)
    ids = [f"rate-{i}" for i in range(20)]
    with schema.client() as client:
        for run_id in ids:
            client.with_options(run_id=run_id, queue="pg_rate").start_workflow(
                "pg.work", run_id, 10
            )
    wait_all_terminal(schema, ids, timeout=40)
    starts = sorted(r[0] for r in schema.query("SELECT started_at FROM runs"))
    # The database's own start times: at most 5 in any window of 1 s (minus the few ms
    # between the claim's count and its update, both inside one transaction).
    worst = max(sum(1 for t in starts if s <= t < s + 1.0 - 0.05) for s in starts)
    span = starts[-1] - starts[0]
    print(f"\nrate 5/s: at most {worst} starts in any 1 s window; 20 starts over {span:.2f}s")
    assert worst <= 5, starts
    assert span >= 2.9, "20 starts at 5 per second take at least 3 s"
    assert span < 8.0, "the limit should not slow starts far below the rate"


def test_workers_take_only_their_queue_and_workflows(schema: Schema, workers: list[Worker]) -> None:
    by_queue = Worker(schema, "--queue", "billing", name="by-queue", lease=LEASE, poll=POLL)
    by_name = Worker(schema, "--workflows", "billing.*", name="by-name", lease=LEASE, poll=POLL)
    workers += [by_queue, by_name]
    by_queue.wait_ready()
    by_name.wait_ready()
    groups = {
        ("billing.invoice", "billing"): {by_queue.pid, by_name.pid},
        ("pg.work", "billing"): {by_queue.pid},
        ("billing.invoice", "default"): {by_name.pid},
        ("pg.work", "default"): set(),  # nobody here may take these
    }
    runs: dict[str, tuple[str, str]] = {}
    with schema.client() as client:
        for i in range(5):
            for workflow, queue in groups:
                run_id = f"{workflow}-{queue}-{i}"
                client.with_options(run_id=run_id, queue=queue).start_workflow(workflow, run_id, 20)
                runs[run_id] = (workflow, queue)
        served = [r for r, g in runs.items() if groups[g]]
        wait_all_terminal(schema, served, timeout=30)
        time.sleep(1.0)  # a few more polls: the unserved runs must still wait
        statuses = {r["run_id"]: r["status"] for r in schema.runs().values()}
        orphans = [r for r, g in runs.items() if not groups[g]]
        assert all(statuses[r] == "pending" for r in orphans), statuses
        spans = _intervals(schema)
        for run_id, (_, _, pid) in spans.items():
            assert pid in groups[runs[run_id]], f"{run_id} executed by the wrong worker"
        assert {spans[r][2] for r in served if runs[r][0] == "billing.invoice"} >= {by_name.pid}
        general = Worker(schema, name="general", lease=LEASE, poll=POLL)
        workers.append(general)
        for r in orphans:
            client.handle(r).result(timeout=30)
    assert {_intervals(schema)[r][2] for r in orphans} == {general.pid}
    for w in (by_queue, by_name, general):
        assert not clean_stderr(w), w.describe()


# -- idle workers must idle --------------------------------------------------------------
@pytest.mark.parametrize(
    "case",
    [
        "other-queue",
        "queue-at-limit",
        "clock-an-hour-fast",  # a sleeping run is due by this worker's clock, not yet really
    ],
)
def test_a_worker_with_nothing_to_claim_does_not_spin(
    case: str, schema: Schema, workers: list[Worker]
) -> None:
    cli = ["--queue", "billing"] if case == "other-queue" else []
    skew = 3600 if case == "clock-an-hour-fast" else 0
    watched = Worker(schema, *cli, name="watched", lease=LEASE, poll=POLL, skew=skew)
    workers.append(watched.wait_ready())
    with schema.client() as client:
        if case == "other-queue":  # due, but in a queue the worker does not serve
            client.with_options(run_id="elsewhere").start_workflow("pg.work", "elsewhere", 10)
        elif case == "clock-an-hour-fast":
            client.with_options(run_id="napping").start_workflow("pg.nap", "napping", 60.0)
            wait_until(lambda: schema.runs()["napping"]["status"] == "sleeping", 15, "a nap")
        else:  # 3 long runs fill the queue's 3 slots; 3 more are due and must wait
            for i in range(6):
                client.with_options(run_id=f"full-{i}", queue="pg_conc").start_workflow(
                    "pg.work", f"full-{i}", 6000
                )
            wait_until(lambda: len(read_effects(schema.effects)) >= 3, 15, "3 runs to start")
        time.sleep(1.0)
        used, served = watched.cpu_seconds(), backend_cpu_seconds(schema)
        time.sleep(3.0)
        used, served = watched.cpu_seconds() - used, backend_cpu_seconds(schema) - served
    print(
        f"\n{case}: a worker with nothing it may claim used {used:.2f} CPU-s in 3 s, "
        f"its database connections {served:.2f} CPU-s"
    )
    assert used + served < 0.3, f"the worker spun: {used + served:.2f} CPU-s in 3 s of waiting"

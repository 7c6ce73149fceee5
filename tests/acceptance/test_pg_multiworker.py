"""docs/guarantees.md, battery item 3: four worker processes on one PostgreSQL schema, one of them
SIGKILLed again and again (and restarted after each kill) while 200 runs execute.

Every run completes; no step whose checkpoint committed runs again (checked with
the journal's committed tokens against the effect log); a killed worker's runs
resume on a peer (how fast: ``bench/postgres.py``, measurement c).

Two ways a dead worker's runs are recovered, one test each:

* ``same-host``: every worker reports the real host name, so a peer sees that the
  dead owner's pid is gone and releases its runs at once (``durably.worker.claimer.owner_is_dead``).
* ``other-hosts``: each worker reports its own fake host name (``PGT_HOST``), as if
  on its own machine, so nobody can check its pid and its runs are resumed only
  when its lease expires. The peers' logs must then show no pid-based recovery.
"""

from __future__ import annotations

import random
import statistics
import threading
import time

import pytest

from tests.acceptance.effects import (
    executions,
    read_effects,
)
from tests.acceptance.pg_harness import (
    Schema,
    Worker,
    check_steps,
    clean_stderr,
    wait_all_terminal,
    wait_until,
)

LEASE, POLL = 2.0, 0.2
RUNS = 200
START_SECONDS = 14.0  # runs are started steadily over this long, so kills hit work
KILL_EVERY = 2.0
RECOVERED = "run(s) of dead worker"  # what the claimer logs when it releases a dead pid's runs


def _plan(seed: int) -> dict[str, tuple[str, list[int]]]:
    """Run id -> (workflow, step delays in ms): sync and async chains of 3 to 5 steps."""
    rng = random.Random(seed)
    plan = {}
    for i in range(RUNS):
        workflow = "pg.chain" if i % 2 else "pg.chain_async"
        plan[f"mw-{i:03d}"] = (workflow, [rng.randint(30, 200) for _ in range(rng.randint(3, 5))])
    return plan


def _start_runs(schema: Schema, plan: dict[str, tuple[str, list[int]]], errors: list[str]) -> None:
    try:
        with schema.client() as client:
            pause = START_SECONDS / len(plan)
            for run_id, (workflow, delays) in plan.items():
                client.with_options(run_id=run_id).start_workflow(workflow, run_id, delays)
                time.sleep(pause)
    except Exception as exc:  # reported by the test thread
        errors.append(repr(exc))


def _owned_running(schema: Schema, pid: int) -> list[str]:
    rows = schema.query(
        "SELECT run_id FROM runs WHERE owner LIKE %s AND status = 'running'", (f"%:{pid}:%",)
    )
    return [r[0] for r in rows]


@pytest.mark.parametrize("mode", ["same-host", "other-hosts"])
def test_repeatedly_killed_worker_loses_nothing(
    mode: str, schema: Schema, workers: list[Worker]
) -> None:
    def settings(name: str) -> dict[str, object]:
        host = {"host": f"fake-{name}"} if mode == "other-hosts" else {}
        return {"lease": LEASE, "poll": POLL, **host}

    peers = [
        Worker(schema, "--concurrency", "32", name=f"peer{i}", **settings(f"peer{i}"))
        for i in range(3)
    ]
    workers += peers
    victim = Worker(schema, "--concurrency", "32", name="victim0", **settings("victim0"))
    workers.append(victim)
    for w in [*peers, victim]:
        w.wait_ready()

    plan = _plan(seed=3)
    errors: list[str] = []
    starter = threading.Thread(target=_start_runs, args=(schema, plan, errors))
    starter.start()

    kills: list[tuple[float, int, list[str]]] = []  # (time, pid, runs it held)
    generation = 0
    while starter.is_alive():
        time.sleep(KILL_EVERY)

        def held(v: Worker = victim) -> list[str] | bool:
            return _owned_running(schema, v.pid) or not starter.is_alive()

        owned = wait_until(
            held,
            10,
            "the victim to hold a run",
            interval=0.02,
        )
        if owned is True:
            break
        kills.append((victim.kill(), victim.pid, owned))
        generation += 1
        victim = Worker(
            schema,
            "--concurrency",
            "32",
            name=f"victim{generation}",
            **settings(f"victim{generation}"),
        )
        workers.append(victim)
    starter.join()
    assert not errors, errors
    wait_all_terminal(schema, plan, timeout=45)

    # -- G1 and G2 ----------------------------------------------------------------------
    killed = {pid for _, pid, _ in kills}
    expected = {run_id: [f"s{i}" for i in range(1, len(d) + 1)] for run_id, (_, d) in plan.items()}
    verdict = check_steps(schema, expected, killed)
    assert not verdict.problems, "\n".join(verdict.problems[:20])
    assert len(kills) >= 4, f"only {len(kills)} kills happened"
    for peer in peers:
        assert peer.alive(), peer.describe()
        assert not clean_stderr(peer), peer.describe()

    # -- how fast orphans resumed, and by which mechanism ---------------------------------
    effects = read_effects(schema.effects)
    delays = []
    for killed_at, pid, owned in kills:
        for run_id in owned:
            resumed = [
                e.at for e in effects if e.run == run_id and e.at > killed_at and e.pid != pid
            ]
            if resumed:  # else the run had ended before the kill landed
                delays.append(resumed[0] - killed_at)
    assert delays, "no kill orphaned a run"
    recoveries = sum(w.stderr.count(RECOVERED) for w in workers if w.pid not in killed)
    print(
        f"\n[{mode}] {len(kills)} kills, {len(delays)} orphaned runs, "
        f"{len(verdict.reruns)} step re-executions (each in G2's window); "
        f"SIGKILL -> next step on a peer: median {statistics.median(delays):.2f}s, "
        f"max {max(delays):.2f}s; "
        f"pid-based recoveries logged: {recoveries}"
    )
    if mode == "same-host":
        assert recoveries >= 1, "a peer should have released a dead pid's runs at once"
    else:
        assert recoveries == 0, "peers on 'other hosts' cannot check pids: only expiry"
        # an expired lease is the only way back in, and a lease lasts LEASE from its last
        # renewal (every LEASE/3): no orphan may resume much earlier than that
        assert min(delays) > LEASE / 3, sorted(delays)
    executed = {x.pid for runs in executions(effects).values() for x in runs}
    assert len(executed & {p.pid for p in peers}) >= 2, "the peers should share the work"

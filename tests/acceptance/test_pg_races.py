"""docs/guarantees.md, battery item 10 (PostgreSQL): races between processes.

* The same run ids started by 2 processes at the same moment (a file barrier)
  make one run each, executed once, and both starters get its result; both with
  executing engines (the creator owns the run at once) and with client engines
  (a worker claims it).
* Workers whose wall clocks are an hour off steal no live lease: leases are
  decided by the database clock. The skew is applied inside the worker process
  (``PGT_SKEW`` patches ``time.time``, which is what durably reads), so it needs
  no ``faketime`` on the machine.
* A durable sleep started by a worker whose clock is an hour off lasts its
  duration: timers are set on the database clock too (the executor measures the
  offset), not on the worker's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.acceptance.effects import (
    executions,
    read_effects,
)
from tests.acceptance.pg_harness import (
    REPO_ROOT,
    Schema,
    Worker,
    clean_stderr,
    wait_until,
    worker_env,
)

LEASE, POLL = 2.0, 0.2
HOUR = 3600.0


# -- the same run started twice at once ------------------------------------------------------
def _racer(schema: Schema, barrier: str, ids: list[str], execute: bool) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.acceptance.pg_app", "race", "--barrier", barrier]
    return subprocess.Popen(
        [*args, *(["--execute"] if execute else []), *ids],
        env=worker_env(schema, lease=LEASE, poll=POLL),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("execute", [True, False], ids=["executing-starters", "client-starters"])
def test_same_run_id_started_by_two_processes_runs_once(
    execute: bool, schema: Schema, workers: list[Worker]
) -> None:
    ids = [f"race-{i}" for i in range(20)]
    if not execute:
        workers.append(Worker(schema, lease=LEASE, poll=POLL).wait_ready())
    barrier = schema.workdir / "go"
    racers = [_racer(schema, str(barrier), ids, execute) for _ in range(2)]
    wait_until(
        lambda: (
            len(list(schema.workdir.glob("ready-*"))) == 2
            or any(r.poll() is not None for r in racers)
        ),
        60,
        "both racers at the barrier",
    )
    barrier.touch()
    results = [r.communicate(timeout=60) for r in racers]
    for racer, (_, err) in zip(racers, results, strict=True):
        assert racer.returncode == 0, err
    first, second = (json.loads(out.strip().splitlines()[-1]) for out, _ in results)
    assert first["outputs"] == second["outputs"], "both starters must see the same run"

    runs = schema.runs()
    assert sorted(runs) == sorted(ids), "one run per id"
    assert all(r["attempts"] == 1 and r["status"] == "completed" for r in runs.values()), runs
    runs_of = executions(read_effects(schema.effects))
    twice = {k: [x.pid for x in v] for k, v in runs_of.items() if len(v) != 1}
    assert not twice, f"steps not run exactly once: {twice}"
    assert len(runs_of) == 3 * len(ids)
    executors = {x.pid for v in runs_of.values() for x in v}
    print(f"\n{len(ids)} raced ids, executed by pids {sorted(executors)}")


# -- skewed clocks ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("holder_skew", "peer_skews"),
    [(0.0, (HOUR, -HOUR)), (HOUR, (0.0, -HOUR))],
    ids=["peers-skewed", "holder-skewed"],
)
def test_skewed_clocks_steal_no_live_lease(
    holder_skew: float, peer_skews: tuple[float, ...], schema: Schema, workers: list[Worker]
) -> None:
    """A run holds its lease through a step of 3 x lease; peers whose clocks are an hour
    ahead or behind poll all along and take nothing. They are not idle: they execute the
    short runs started meanwhile (the holder only runs ``pg.long``)."""
    holder = Worker(
        schema, "--workflows", "pg.long", name="holder", host="h0", skew=holder_skew,
        lease=LEASE, poll=POLL,
    ).wait_ready()  # fmt: skip
    workers.append(holder)
    with schema.client() as client:
        client.with_options(run_id="held").start_workflow("pg.long", "held", 3 * LEASE, 1)
        wait_until(
            lambda: any(e.pid == holder.pid for e in read_effects(schema.effects)),
            15,
            "the holder to enter the long step",
        )
        peers = [
            Worker(schema, name=f"peer{i}", host=f"h{i + 1}", skew=skew, lease=LEASE, poll=POLL)
            for i, skew in enumerate(peer_skews)
        ]
        workers.extend(peers)
        for p in peers:
            p.wait_ready()
        handles = [
            client.with_options(run_id=f"quick-{i}").start_workflow(
                "pg.chain", f"quick-{i}", [5, 5, 5]
            )
            for i in range(20)
        ]
        for h in handles:
            h.result(timeout=20)
        output = client.handle("held").result(timeout=20)

    runs_of = executions(read_effects(schema.effects))
    assert [x.pid for x in runs_of[("held", "long")]] == [holder.pid], "the lease was stolen"
    assert [x.pid for x in runs_of[("held", "after1")]] == [holder.pid]
    assert schema.runs()["held"]["attempts"] == 1
    assert output == [json.loads(j[3] or "null") for j in schema.journal()["held"]]
    quick_pids = {x.pid for (run, _), v in runs_of.items() if run != "held" for x in v}
    assert quick_pids <= {p.pid for p in peers} and quick_pids, "peers should have been busy"
    for w in [holder, *peers]:
        assert not clean_stderr(w), w.describe()
    print(f"\nholder skew {holder_skew:+g}s, peer skews {peer_skews}: no lease stolen")


@pytest.mark.parametrize("skew", [HOUR, -HOUR], ids=["fast-clock", "slow-clock"])
def test_a_durable_sleep_lasts_its_duration_under_a_skewed_clock(
    skew: float, schema: Schema, workers: list[Worker]
) -> None:
    nap = 3.0
    sleeper = Worker(schema, name="skewed", host="h0", skew=skew, lease=LEASE, poll=POLL)
    workers.append(sleeper.wait_ready())
    with schema.client() as client:
        client.with_options(run_id="nap").start_workflow("pg.nap", "nap", nap)
        wait_until(lambda: read_effects(schema.effects), 15, "the first step")
        # A correct peer joins once the run sleeps: either may wake it.
        workers.append(Worker(schema, name="peer", host="h1", lease=LEASE, poll=POLL))
        try:
            client.handle("nap").result(timeout=nap + 8)
        except TimeoutError:
            row = schema.query(
                "SELECT status, available_at - extract(epoch from clock_timestamp())::float8 "
                "FROM runs WHERE run_id = 'nap'"
            )[0]
            raise AssertionError(
                f"a {nap:g}s sleep did not end in {nap + 8:g}s: run {row[0]}, due in "
                f"{row[1]:.0f}s by the database clock"
            ) from None
    runs_of = executions(read_effects(schema.effects))
    (first,), (second,) = runs_of[("nap", "after1")], runs_of[("nap", "after2")]
    slept = second.start - first.end  # type: ignore[operator]
    print(f"\nclock skew {skew:+g}s: a {nap:g}s durable sleep took {slept:.2f}s")
    # Set on the database's clock, the sleep lasts what it says: on the skewed host's
    # clock it would be off by the whole skew.
    assert abs(slept - nap) < abs(skew) / 2, f"slept {slept:.2f}s for {nap:g}s"

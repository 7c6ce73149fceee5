"""What operators do through the engine: list and count runs, read their history,
fork them, purge the old ones; on each backend."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

import durably
from durably.records import RunStatus

executed: Counter[str] = Counter()
lock = threading.Lock()


def _count(name: str) -> None:
    with lock:
        executed[name] += 1


@durably.step(name="op.add")
def add(i: int, total: int) -> int:
    _count(f"add{i}")
    return total + i


@durably.workflow(name="op.five")
def five() -> int:
    total = 0
    for i in range(5):
        total = add(i, total)
    return total


@durably.step(name="op.flaky", retries=2, backoff=0.01)
def flaky(fails: int) -> str:
    _count("flaky")
    if executed["flaky"] <= fails:
        raise RuntimeError(f"attempt {executed['flaky']} fails")
    return "ok"


@durably.workflow(name="op.retried")
def retried() -> str:
    return flaky(2)


@durably.workflow(name="op.napper")
def napper() -> str:
    durably.sleep(1.2)  # past the resident delay: the run is suspended, then claimed
    return "up"


@durably.workflow(name="opbill.invoice")
def invoice(n: int) -> int:
    return n


@durably.workflow(name="opbill.refund")
def refund(n: int) -> int:
    return -n


@durably.workflow(name="op.echo")
def echo(n: int) -> int:
    return n


def test_listing_filters_and_pages(engine: durably.Engine) -> None:
    started = [engine.start_workflow(invoice, i) for i in range(5)]
    started += [engine.start_workflow(refund, 1), engine.start_workflow(echo, 1)]
    keyed = engine.with_options(idempotency_key="k-1", queue="q2").start_workflow(echo, 2)
    for h in [*started, keyed]:
        h.result(timeout=10)
    assert engine.count_runs() == 8
    assert engine.count_runs(workflow="opbill.*") == 6
    assert engine.count_runs(workflow=["opbill.refund", "op.echo"]) == 3
    assert engine.count_runs(status=["completed", "failed"]) == 8
    assert engine.count_runs(status="failed") == 0
    assert [r.run_id for r in engine.list_runs(key="k-1")] == [keyed.run_id]
    assert [r.run_id for r in engine.list_runs(queue="q2")] == [keyed.run_id]
    assert engine.count_runs(since=datetime.now(UTC) + timedelta(hours=1)) == 0
    assert engine.count_runs(until=time.time() + 3600) == 8
    seen: list[str] = []
    page = engine.list_runs(limit=3)
    while True:
        seen += [r.run_id for r in page]
        if page.cursor is None:
            break
        page = engine.list_runs(limit=3, cursor=page.cursor)
    assert len(seen) == len(set(seen)) == 8  # every run once, newest first
    newest_first = [r.created_at for r in engine.list_runs(limit=100)]
    assert newest_first == sorted(newest_first, reverse=True)


def test_listing_refuses_bad_filters(engine: durably.Engine) -> None:
    with pytest.raises(ValueError, match="unknown status 'done'; the statuses are: pending"):
        engine.list_runs(status="done")
    with pytest.raises(ValueError, match="invalid cursor"):
        engine.list_runs(cursor="not-a-cursor")
    with pytest.raises(ValueError, match="limit must be a positive int"):
        engine.list_runs(limit=0)
    with pytest.raises(ValueError, match="expected a datetime"):
        engine.list_runs(since="yesterday")  # type: ignore[arg-type]


def test_history_tells_the_runs_life(engine: durably.Engine) -> None:
    executed["flaky"] = 0
    handle = engine.start_workflow(retried)
    assert handle.result(timeout=20) == "ok"
    kinds = [e.kind for e in engine.history(handle.run_id)]
    assert kinds[0] == "created" and kinds[-1] == "finished"
    assert kinds.count("attempt failed") == 2  # each failed attempt, with its error
    failed = [e for e in engine.history(handle.run_id) if e.kind == "attempt failed"]
    assert "attempt 1 fails" in failed[0].detail["error"]
    assert "step completed" in kinds
    assert kinds.index("step started") < kinds.index("attempt failed")
    times = [e.at for e in engine.history(handle.run_id)]
    assert times == sorted(times)
    with pytest.raises(durably.RunNotFound):
        engine.history("no-such-run")


def test_history_of_a_sleep(engine: durably.Engine) -> None:
    handle = engine.start_workflow(napper)
    assert handle.result(timeout=10) == "up"
    kinds = [e.kind for e in engine.history(handle.run_id)]
    assert "timer set" in kinds and "suspended" in kinds and "claimed" in kinds
    (suspended,) = [e for e in engine.history(handle.run_id) if e.kind == "suspended"]
    assert datetime.fromisoformat(suspended.detail["until"]).tzinfo is not None  # a time


@durably.step(name="op.slow_retry", retries=1, backoff="1h")
def slow_retry() -> None:
    raise ConnectionError("gateway down")


@durably.workflow(name="op.backing_off")
def backing_off() -> None:
    slow_retry()


def test_a_run_waiting_out_a_steps_backoff_says_so(engine: durably.Engine) -> None:
    handle = engine.start_workflow(backing_off)
    deadline = time.monotonic() + 15
    while (said := engine.waiting_for(handle.run_id) or "").startswith(("running", "waiting")):
        assert time.monotonic() < deadline, said
        time.sleep(0.02)
    assert said.startswith("retrying step 'op.slow_retry' (attempt 2) at "), said


def test_fork_at_every_position_reruns_exactly_the_steps_from_there(
    engine: durably.Engine,
) -> None:
    executed.clear()
    original = engine.start_workflow(five)
    assert original.result(timeout=10) == 10
    assert all(executed[f"add{i}"] == 1 for i in range(5))
    for position in range(6):
        before = Counter(executed)
        forked = engine.fork(original.run_id, from_step=position)
        assert forked != original.run_id
        assert engine.handle(forked).result(timeout=10) == 10
        ran = executed - before
        assert ran == Counter({f"add{i}": 1 for i in range(position, 5)}), position
        kinds = [e.kind for e in engine.history(forked)]
        assert "forked" in kinds
    assert "forked into" in [e.kind for e in engine.history(original.run_id)]


def test_fork_refuses_what_is_not_a_position(engine: durably.Engine) -> None:
    handle = engine.start_workflow(five)
    handle.result(timeout=10)
    for bad in (-1, 6, True, "2"):
        with pytest.raises(ValueError, match="from_step"):
            engine.fork(handle.run_id, from_step=bad)  # type: ignore[arg-type]
    with pytest.raises(durably.RunNotFound):
        engine.fork("no-such-run", from_step=0)
    assert engine.count_runs(workflow="op.five") == 1  # nothing started


def test_purge_deletes_only_what_retention_lets_go(engine: durably.Engine) -> None:
    for i in range(3):
        engine.start_workflow(invoice, i).result(timeout=10)
    keep_all = durably.Retention(completed="1d")
    assert engine.purge(keep_all, dry_run=True) == 0
    assert engine.purge(keep_all) == 0
    time.sleep(0.05)
    at_once = durably.Retention(completed=0.01)
    assert engine.purge(at_once, dry_run=True) == 3
    assert engine.count_runs() == 3  # a dry run deletes nothing
    assert engine.purge(at_once, batch=2) == 3
    assert engine.count_runs() == 0


def test_async_twins(engine: durably.Engine) -> None:
    import asyncio

    handle = engine.start_workflow(five)
    handle.result(timeout=10)

    async def main() -> None:
        page = await engine.list_runs_async(workflow="op.five")
        assert [r.run_id for r in page] == [handle.run_id]
        assert await engine.count_runs_async(status=RunStatus.COMPLETED) == 1
        assert await engine.waiting_for_async(handle.run_id) is None
        assert (await engine.history_async(handle.run_id))[0].kind == "created"
        forked = await engine.fork_async(handle.run_id, 5)
        assert await engine.handle(forked).result_async(timeout=10) == 10

    asyncio.run(main())

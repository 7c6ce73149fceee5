"""Composition: child workflows, continue-as-new, parallel steps, cancellation, compensation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import durably
from durably import RunStatus
from durably.testing import TestEngine

LOG: list[str] = []
LOCK = threading.Lock()
RUNNING = {"now": 0, "peak": 0}


@durably.step
def note(text: str) -> str:
    with LOCK:
        LOG.append(text)
    return text


@durably.step
def square(x: int) -> int:
    with LOCK:
        RUNNING["now"] += 1
        RUNNING["peak"] = max(RUNNING["peak"], RUNNING["now"])
    time.sleep(0.02)
    with LOCK:
        RUNNING["now"] -= 1
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * x


@durably.step
async def square_async(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * x


def _wait_status(engine: durably.Engine, run_id: str, status: RunStatus) -> None:
    deadline = time.monotonic() + 5
    while engine.get_run(run_id).status is not status:
        assert time.monotonic() < deadline, f"run never became {status}"
        time.sleep(0.01)


# -- children -------------------------------------------------------------------------
@durably.workflow(name="c.child")
def child(n: int) -> int:
    if n < 0:
        raise ValueError("no negative children")
    return n * 10


@durably.workflow(name="c.parent")
def parent(ns: list[int]) -> object:
    handles = [durably.start_child(child, n) for n in ns]
    try:
        return sum(h.result() for h in handles)
    except durably.ChildFailed as exc:
        return f"child failed: {exc.error_type}: {exc.error_message}"


@durably.workflow(name="c.parent_async")
async def parent_async(n: int) -> int:
    handle = await durably.start_child_async(child, n)
    return await handle.result_async() + 1


def test_children(engine: durably.Engine) -> None:
    handle = engine.start_workflow(parent, [1, 2, 3])
    assert handle.result(timeout=10) == 60
    children = [r for r in engine.list_runs(workflow="c.child") if r.parent_id == handle.run_id]
    assert len(children) == 3 and all(r.status is RunStatus.COMPLETED for r in children)
    assert engine.start_workflow(parent_async, 4).result(timeout=10) == 41


def test_failed_child_raises_child_failed(engine: durably.Engine) -> None:
    result = engine.start_workflow(parent, [1, -1]).result(timeout=10)
    assert result == "child failed: ValueError: no negative children"


@durably.workflow(name="c.sleepy_child")
def sleepy_child() -> str:
    durably.sleep("1h")
    return "woke"


@durably.workflow(name="c.waiting_parent")
def waiting_parent() -> str:
    return durably.start_child(sleepy_child).result()


def test_cancelling_a_parent_cancels_its_children(engine: durably.Engine) -> None:
    handle = engine.start_workflow(waiting_parent)
    _wait_status(engine, handle.run_id, RunStatus.WAITING)
    (kid,) = [r for r in engine.list_runs(workflow="c.sleepy_child") if r.parent_id]
    _wait_status(engine, kid.run_id, RunStatus.SLEEPING)
    handle.cancel("shutting the shop")
    with pytest.raises(durably.WorkflowCancelled, match="shutting the shop"):
        handle.result(timeout=5)
    _wait_status(engine, kid.run_id, RunStatus.CANCELLED)


# -- continue-as-new ------------------------------------------------------------------
@durably.workflow(name="c.counter")
def counter(i: int, limit: int) -> int:
    note(f"count {i}")
    if i < limit:
        durably.continue_as_new(i + 1, limit)
    return i


def test_continue_as_new_follows_the_chain(engine: durably.Engine) -> None:
    handle = engine.start_workflow(counter, 0, 20)
    assert handle.result(timeout=10) == 20
    first = engine.get_run(handle.run_id)
    assert first.status is RunStatus.COMPLETED and first.continued_to is not None
    assert len(engine.steps(handle.run_id)) == 1  # each link has its own, bounded journal
    assert len(engine.steps(first.continued_to)) == 1
    with pytest.raises(durably.NotInWorkflow):
        durably.continue_as_new(1)


@durably.workflow(name="c.chained_child_parent")
def chained_child_parent() -> int:
    return durably.start_child(counter, 0, 3).result()


def test_parent_waits_for_the_end_of_a_childs_chain(engine: durably.Engine) -> None:
    assert engine.start_workflow(chained_child_parent).result(timeout=10) == 3


# -- parallel steps -------------------------------------------------------------------
@durably.workflow(name="c.map")
def mapper(xs: list[int], limit: int | None) -> list[int]:
    return durably.map(square, xs, max_concurrency=limit)


PAIRS = threading.Barrier(2, timeout=10)


@durably.step
def paired(x: int) -> int:
    """Returns only once another branch runs at the same moment (a pair of them)."""
    with LOCK:
        RUNNING["now"] += 1
        RUNNING["peak"] = max(RUNNING["peak"], RUNNING["now"])
    try:
        PAIRS.wait()
    finally:
        with LOCK:
            RUNNING["now"] -= 1
    return x * x


@durably.workflow(name="c.map_pairs")
def pairs(xs: list[int]) -> list[int]:
    return durably.map(paired, xs, max_concurrency=2)


@durably.workflow(name="c.map_async")
async def mapper_async(xs: list[int]) -> list[int]:
    mapped = await durably.map_async(square_async, xs, max_concurrency=3)
    gathered = await asyncio.gather(square_async(7), square_async(8))
    return [*mapped, *gathered]


@durably.workflow(name="c.gather")
def gatherer() -> list[object]:
    return durably.gather(lambda: square(2), lambda: note("n"))


@durably.workflow(name="c.bad_gather")
def bad_gather() -> list[object]:
    return durably.gather(lambda: square(2) + 1)


def test_map_in_order_with_a_concurrency_limit(engine: durably.Engine) -> None:
    RUNNING["peak"] = 0
    PAIRS.reset()
    # Each branch waits for a partner: with one at a time the barrier would time out,
    # and a third at once would show in the peak.
    handle = engine.start_workflow(pairs, list(range(8)))
    assert handle.result(timeout=30) == [x * x for x in range(8)]
    assert RUNNING["peak"] == 2
    assert [s.seq for s in engine.steps(handle.run_id)] == list(range(8))
    assert engine.start_workflow(mapper, [3, 1, 2], None).result(timeout=10) == [9, 1, 4]


def test_map_raises_the_first_failure_after_all_settle(kit: TestEngine) -> None:
    engine = kit  # the failing steps' backoff on a virtual clock
    handle = engine.start_workflow(mapper, [1, -2, 3, -4], None)
    with pytest.raises(durably.WorkflowFailed, match="negative: -2"):
        handle.result(timeout=10)
    statuses = [s.status for s in engine.steps(handle.run_id)]
    assert statuses == ["completed", "failed", "completed", "failed"]


def test_async_map_and_gather(engine: durably.Engine) -> None:
    assert engine.start_workflow(mapper_async, [1, 2, 3, 4]).result(timeout=10) == [
        1,
        4,
        9,
        16,
        49,
        64,
    ]


def test_sync_gather(engine: durably.Engine) -> None:
    assert engine.start_workflow(gatherer).result(timeout=10) == [4, "n"]
    with pytest.raises(durably.WorkflowFailed, match="must be a function returning one step"):
        engine.start_workflow(bad_gather).result(timeout=10)


# -- cancellation and compensation ----------------------------------------------------
@durably.step
def long_step(ticks: int) -> str:
    for _ in range(ticks):
        if durably.is_cancelled():
            return "noticed"
        time.sleep(0.02)
    return "finished"


@durably.workflow(name="c.cancellable")
def cancellable(ticks: int) -> str:
    durably.compensate(note, "undo reserve")
    note("reserve")
    durably.compensate(note, "undo charge")
    note("charge")
    try:
        outcome = long_step(ticks)
        note(f"after {outcome}")  # a durable call: the cancellation is delivered here
        durably.sleep("1h")
    except durably.WorkflowCancelled:
        with durably.shield():
            note("cleanup")
        raise
    return outcome


def test_cancel_a_running_run(engine: durably.Engine) -> None:
    LOG.clear()
    handle = engine.start_workflow(cancellable, 500)
    deadline = time.monotonic() + 5
    while "charge" not in LOG:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    handle.cancel()
    with pytest.raises(durably.WorkflowCancelled):
        handle.result(timeout=5)
    assert engine.get_run(handle.run_id).status is RunStatus.CANCELLED
    assert LOG == ["reserve", "charge", "cleanup", "undo charge", "undo reserve"]
    names = [s.output for s in engine.steps(handle.run_id) if s.name == "note"]
    assert names == ["reserve", "charge", "cleanup", "undo charge", "undo reserve"]
    assert engine.steps(handle.run_id)[2].output == "noticed"


def test_cancel_a_sleeping_run_at_once(engine: durably.Engine) -> None:
    LOG.clear()
    handle = engine.start_workflow(cancellable, 0)
    _wait_status(engine, handle.run_id, RunStatus.SLEEPING)
    engine.cancel(handle.run_id)
    with pytest.raises(durably.WorkflowCancelled):
        handle.result(timeout=5)  # the run sleeps for an hour: only the cancel ends it
    assert LOG[-3:] == ["cleanup", "undo charge", "undo reserve"]
    engine.cancel(handle.run_id)  # cancelling again does nothing


def test_cancel_errors(engine: durably.Engine) -> None:
    with pytest.raises(durably.RunNotFound):
        engine.cancel("missing")
    done = engine.start_workflow(child, 1)
    done.result(timeout=5)
    with pytest.raises(durably.InvalidRunState, match="completed"):
        engine.cancel(done.run_id)


@durably.workflow(name="c.compensating")
def compensating(fail: bool) -> str:
    durably.compensate(note, "refund")
    note("pay")
    if fail:
        raise RuntimeError("shipping impossible")
    return "shipped"


def test_compensation_runs_on_failure_only(engine: durably.Engine) -> None:
    LOG.clear()
    assert engine.start_workflow(compensating, False).result(timeout=5) == "shipped"
    assert LOG == ["pay"]
    handle = engine.start_workflow(compensating, True)
    with pytest.raises(durably.WorkflowFailed, match="shipping impossible"):
        handle.result(timeout=5)
    assert LOG == ["pay", "pay", "refund"]
    assert [s.output for s in engine.steps(handle.run_id)] == ["pay", "refund"]
    with pytest.raises(durably.NotInWorkflow):
        durably.compensate(note, "x")

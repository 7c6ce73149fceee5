"""What a cancelled run ends as, in each situation of the README's table, and why it says."""

from __future__ import annotations

import threading
import time

import pytest

import durably
from durably import RunStatus

IN_STEP = threading.Event()


@durably.step
def watchful() -> str:
    """A long step that polls for cancellation and gives up when asked."""
    IN_STEP.set()
    for _ in range(500):
        if durably.is_cancelled():
            raise durably.WorkflowCancelled("the step saw the cancel")
        time.sleep(0.01)
    return "finished"


@durably.workflow(name="cancel.in_step")
def in_step() -> str:
    return watchful()


@durably.step
def stubborn() -> str:
    """A long step that does not look: the run is cancelled at its next durable call."""
    IN_STEP.set()
    time.sleep(0.5)
    return "done anyway"


@durably.workflow(name="cancel.after_step")
def after_step() -> str:
    stubborn()
    durably.sleep("1h")
    return "never"


@durably.workflow(name="cancel.in_last_step")
def in_last_step() -> str:
    return stubborn()  # nothing durable after it: the run ends where the step returns


@durably.workflow(name="cancel.sleeping")
def sleeping() -> str:
    durably.sleep("1h")
    return "never"


@durably.workflow(name="cancel.swallowed")
def swallowed() -> str:
    try:
        durably.sleep("1h")
    except durably.WorkflowCancelled:
        return "cancelled, and said so"
    return "never"


@durably.workflow(name="cancel.kid")
def kid() -> str:
    return str(durably.wait_for_signal("never"))


@durably.workflow(name="cancel.parent")
def parent() -> str:
    return durably.start_child(kid).result()


def _until(engine: durably.Engine, run_id: str, status: RunStatus) -> None:
    deadline = time.monotonic() + 10
    while engine.get_run(run_id).status is not status:
        assert time.monotonic() < deadline, f"never {status}"
        time.sleep(0.01)


def test_a_step_that_sees_the_cancel_ends_the_run_cancelled(engine: durably.Engine) -> None:
    IN_STEP.clear()
    handle = engine.start_workflow(in_step)
    assert IN_STEP.wait(10)
    engine.cancel(handle.run_id, reason="the customer asked")
    with pytest.raises(durably.WorkflowCancelled, match="the step saw the cancel"):
        handle.result(timeout=10)
    assert engine.get_run(handle.run_id).status is RunStatus.CANCELLED


@pytest.mark.parametrize("wf", [after_step, in_last_step], ids=["then a sleep", "then nothing"])
def test_a_cancel_during_a_step_stops_the_run_after_it_with_its_reason(
    engine: durably.Engine, wf: durably.Workflow[[], str]
) -> None:
    # The step runs on; the run stops at its next durable call, or where the workflow
    # returns when it makes none (it ended completed there, once).
    IN_STEP.clear()
    handle = engine.start_workflow(wf)
    assert IN_STEP.wait(10)
    engine.cancel(handle.run_id, reason="the customer asked")
    with pytest.raises(durably.WorkflowCancelled, match="cancelled: the customer asked"):
        handle.result(timeout=10)
    assert engine.get_run(handle.run_id).status is RunStatus.CANCELLED
    steps = engine.steps(handle.run_id)  # the step's own work is kept
    assert [(s.name, s.output) for s in steps] == [("stubborn", "done anyway")]


def test_a_sleeping_run_is_cancelled_at_once_with_its_reason(engine: durably.Engine) -> None:
    handle = engine.start_workflow(sleeping)
    _until(engine, handle.run_id, RunStatus.SLEEPING)
    engine.cancel(handle.run_id, reason="no longer needed")
    with pytest.raises(durably.WorkflowCancelled, match="no longer needed"):
        handle.result(timeout=10)


def test_a_workflow_that_swallows_the_cancel_completes(engine: durably.Engine) -> None:
    handle = engine.start_workflow(swallowed)
    _until(engine, handle.run_id, RunStatus.SLEEPING)
    engine.cancel(handle.run_id)
    assert handle.result(timeout=10) == "cancelled, and said so"
    assert engine.get_run(handle.run_id).status is RunStatus.COMPLETED


def test_cancelling_a_parent_cancels_its_waiting_child(engine: durably.Engine) -> None:
    handle = engine.start_workflow(parent)
    _until(engine, handle.run_id, RunStatus.WAITING)
    (child,) = [r for r in engine.list_runs(workflow="cancel.kid") if r.parent_id == handle.run_id]
    _until(engine, child.run_id, RunStatus.WAITING)
    engine.cancel(handle.run_id, reason="stop everything")
    with pytest.raises(durably.WorkflowCancelled, match="stop everything"):
        handle.result(timeout=10)
    _until(engine, child.run_id, RunStatus.CANCELLED)

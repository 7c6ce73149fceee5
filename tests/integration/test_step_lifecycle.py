"""A step's attempts: timeouts that abandon a body and wait for it, heartbeats, what a body
knows of its run, durations in retry policies, and a workflow's own timeout."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import durably

EVENTS: list[str] = []
LOCK = threading.Lock()


def note(event: str) -> None:
    with LOCK:
        EVENTS.append(event)


@durably.step(timeout="300ms", timeout_grace="10s", retries=1, backoff=0)
def polite() -> str:
    """Attempt 1 outlives its timeout but stops as soon as it learns it was abandoned."""
    attempt = durably.current_run().step_attempt
    note(f"start {attempt}")
    if attempt == 1:
        while not durably.is_cancelled():
            time.sleep(0.01)
    note(f"end {attempt}")
    return f"attempt {attempt}"


@durably.workflow(name="life.polite")
def polite_wf() -> str:
    return polite()


def test_a_retry_waits_for_the_abandoned_body(engine: durably.Engine) -> None:
    EVENTS.clear()
    assert engine.start_workflow(polite_wf).result(timeout=20) == "attempt 2"
    assert EVENTS == ["start 1", "end 1", "start 2", "end 2"]  # never two at once


@durably.step(timeout="300ms", timeout_grace="10s", retries=1, backoff=0)
def beating() -> str:
    attempt = durably.current_run().step_attempt
    note(f"start {attempt}")
    try:
        while attempt == 1:
            durably.heartbeat()  # raises StepTimeout once the attempt is abandoned
            time.sleep(0.01)
    except durably.StepTimeout:
        note("told to stop")
        raise
    return "ok"


@durably.workflow(name="life.beating")
def beating_wf() -> str:
    return beating()


def test_heartbeat_tells_an_abandoned_body_to_stop(engine: durably.Engine) -> None:
    EVENTS.clear()
    assert engine.start_workflow(beating_wf).result(timeout=20) == "ok"
    assert EVENTS == ["start 1", "told to stop", "start 2"]


@durably.step(heartbeat_timeout="300ms", timeout_grace="10s", retries=1, backoff=0)
def silent_then_beating() -> Any:
    info = durably.current_run()
    if info.step_attempt == 1:
        durably.heartbeat(details={"done": 3})
        while not durably.is_cancelled():  # silent from now on: taken as hung
            time.sleep(0.01)
        return "abandoned"
    for _ in range(8):  # 0.8 s in all, longer than the heartbeat timeout, but beating
        durably.heartbeat()
        time.sleep(0.1)
    return info.heartbeat_details


@durably.workflow(name="life.heartbeat_timeout")
def heartbeat_timeout_wf() -> Any:
    return silent_then_beating()


def test_a_step_that_stops_heartbeating_is_taken_as_hung(engine: durably.Engine) -> None:
    handle = engine.start_workflow(heartbeat_timeout_wf)
    assert handle.result(timeout=20) == {"done": 3}  # the details carried to attempt 2
    (entry,) = engine.steps(handle.run_id)
    assert (entry.status, entry.attempts) == ("completed", 2)


@durably.step(timeout="200ms", timeout_grace="5s", retries=1, backoff=0)
async def slow_async() -> str:
    attempt = durably.current_run().step_attempt
    try:
        if attempt == 1:
            await asyncio.sleep(30)
        return "fast"
    finally:
        note(f"finally {attempt}")


@durably.workflow(name="life.slow_async")
async def slow_async_wf() -> str:
    return await slow_async()


def test_an_async_body_past_its_timeout_is_cancelled_before_its_retry(
    engine: durably.Engine,
) -> None:
    EVENTS.clear()
    assert engine.start_workflow(slow_async_wf).result(timeout=20) == "fast"
    assert EVENTS == ["finally 1", "finally 2"]


@durably.step("life.who")
def who() -> list[object]:
    info = durably.current_run()
    return [info.step, info.position, info.step_attempt]


@durably.workflow("life.introspect")
def introspect() -> list[object]:
    info = durably.current_run()
    return [info.run_id, info.workflow, info.attempt, info.step, who()]


def test_code_knows_its_run(engine: durably.Engine) -> None:
    handle = engine.start_workflow(introspect)
    assert handle.result(timeout=10) == [
        handle.run_id,
        "life.introspect",
        1,
        None,
        ["life.who", 0, 1],
    ]
    with pytest.raises(durably.NotInWorkflow):
        durably.current_run()
    durably.heartbeat()  # a plain call outside runs: nothing to do


@durably.step(retries=2, backoff=durably.Backoff(initial="10ms", factor=1, jitter=0))
def flaky_with_retry_after() -> str:
    attempt = durably.current_run().step_attempt
    if attempt == 1:
        raise durably.RetryableError("later", retry_after="50ms")
    if attempt == 2:
        raise RuntimeError("again")
    return f"third time ({attempt})"


@durably.workflow(name="life.retry_after")
def retry_after_wf() -> str:
    return flaky_with_retry_after()


def test_durations_in_retries(engine: durably.Engine) -> None:
    assert engine.start_workflow(retry_after_wf).result(timeout=10) == "third time (3)"
    with pytest.raises(ValueError, match="duration"):
        durably.RetryableError("x", retry_after="soon")


@durably.step
def undo(what: str) -> None:
    note(f"undo {what}")


@durably.workflow(name="life.kid")
def kid() -> object:
    return durably.wait_for_signal("never")


@durably.workflow(name="life.slowpoke", timeout="1s")
def slowpoke() -> str:
    durably.compensate(undo, "reservation")
    durably.start_child(kid)
    durably.sleep("1h")
    return "never"


def test_a_workflow_past_its_timeout_is_cancelled(engine: durably.Engine) -> None:
    EVENTS.clear()
    handle = engine.start_workflow(slowpoke)
    with pytest.raises(durably.WorkflowTimedOut, match="1s timeout"):
        handle.result(timeout=20)
    assert EVENTS == ["undo reservation"]
    (child,) = [r for r in engine.list_runs(workflow="life.kid") if r.parent_id == handle.run_id]
    deadline = time.monotonic() + 10
    while engine.get_run(child.run_id).status is not durably.RunStatus.CANCELLED:
        assert time.monotonic() < deadline, "the child outlived its parent's timeout"
        time.sleep(0.02)


@durably.workflow(name="life.blocking_sleep")
async def blocking_sleep() -> str:
    try:
        durably.sleep(0.01)
    except TypeError as exc:
        return str(exc)
    return "slept"


def test_blocking_calls_in_async_workflows_are_refused(engine: durably.Engine) -> None:
    said = engine.start_workflow(blocking_sleep).result(timeout=10)
    assert "durably.sleep() blocks" in said and "sleep_async()" in said
    with pytest.raises(TypeError, match="must be a step"):
        durably.map(lambda x: x, [1])  # type: ignore[arg-type]

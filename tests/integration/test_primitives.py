"""Primitives on sync and async workflows: timers, signals, events, values, patches."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import durably
from durably import RunStatus

LOG: list[str] = []
FLAGS = {"fail": False, "patched": False}


@durably.step
def note(text: str) -> str:
    LOG.append(text)
    return text


@durably.step(retries=0)
def maybe_fail() -> None:
    if FLAGS["fail"]:
        raise RuntimeError("failing on purpose")


# -- sleep ----------------------------------------------------------------------------
@durably.workflow(name="p.sleep")
def sleeper(seconds: float) -> str:
    note("before")
    durably.sleep(seconds)
    return note("after")


@durably.workflow(name="p.sleep_async")
async def sleeper_async(seconds: float) -> str:
    await durably.sleep_async(timedelta(seconds=seconds))
    return "woke"


@durably.workflow(name="p.sleep_until")
def sleeper_until(stamp: float) -> str:
    durably.sleep_until(datetime.fromtimestamp(stamp, UTC))
    return "on time"


def _wait_status(engine: durably.Engine, run_id: str, status: RunStatus, limit: float = 5) -> None:
    deadline = time.monotonic() + limit
    while engine.get_run(run_id).status is not status:
        assert time.monotonic() < deadline, f"run never became {status}"
        time.sleep(0.01)


@pytest.mark.parametrize("wf", [sleeper, sleeper_async])
def test_short_sleep_stays_resident(engine: durably.Engine, wf: durably.Workflow[..., Any]) -> None:
    handle = engine.start_workflow(wf, 0.05)
    handle.result(timeout=5)
    # Not released and claimed again after the timer: one execution did it all.
    assert engine.get_run(handle.run_id).attempts == 1


def test_long_sleep_frees_the_worker(engine: durably.Engine) -> None:
    handle = engine.start_workflow(sleeper, 1.3)
    _wait_status(engine, handle.run_id, RunStatus.SLEEPING)
    executor = engine._executor
    assert executor is not None
    deadline = time.monotonic() + 1  # the suspension commits just before it is unloaded
    while executor.is_running(handle.run_id):
        assert time.monotonic() < deadline, "a sleeping run must not stay loaded"
        time.sleep(0.01)
    assert handle.result(timeout=5) == "after"
    kinds = [(s.kind, s.status) for s in engine.steps(handle.run_id)]
    assert kinds == [("step", "completed"), ("sleep", "completed"), ("step", "completed")]


def test_async_long_sleep_and_sleep_until(engine: durably.Engine) -> None:
    first = engine.start_workflow(sleeper_async, 1.2)
    second = engine.start_workflow(sleeper_until, time.time() + 1.2)
    _wait_status(engine, first.run_id, RunStatus.SLEEPING)
    assert first.result(timeout=5) == "woke"
    assert second.result(timeout=5) == "on time"


def test_timer_that_fell_due_during_downtime_fires_at_launch(store_url: str) -> None:
    with durably.Engine(store_url, poll_interval=0.05) as engine:
        handle = engine.start_workflow(sleeper, 1.2)
        _wait_status(engine, handle.run_id, RunStatus.SLEEPING)
    time.sleep(1.5)  # nothing runs while the timer falls due
    # Claimed at launch, not after a poll interval (which is longer than the wait).
    with durably.Engine(store_url, poll_interval=60) as engine:
        assert engine.handle(handle.run_id).result(timeout=20) == "after"


@pytest.mark.parametrize("bad", ["-5s", "soon", -1, "1h-2m"])
def test_bad_durations(engine: durably.Engine, bad: object) -> None:
    with pytest.raises(ValueError):
        durably.sleep(bad)  # type: ignore[arg-type]
    with pytest.raises(durably.WorkflowFailed, match="ValueError"):
        engine.start_workflow(sleeper, bad).result(timeout=5)  # type: ignore[call-overload]


# -- signals --------------------------------------------------------------------------
@durably.workflow(name="p.signals")
def receiver(count: int, timeout: float | None) -> list[object]:
    return [durably.wait_for_signal("item", timeout=timeout) for _ in range(count)]


@durably.workflow(name="p.signals_async")
async def receiver_async() -> list[object]:
    first = await durably.wait_for_signal_async("item")
    second = await durably.wait_for_signal_async("item", timeout=0.2)
    return [first, second]


@durably.workflow(name="p.signal_raises")
def receiver_raises() -> str:
    try:
        durably.wait_for_signal("never", timeout=0.1, raise_on_timeout=True)
    except TimeoutError as exc:
        return str(exc)
    return "no timeout"


def test_signals_buffered_in_order_exactly_once(engine: durably.Engine) -> None:
    handle = engine.with_options(run_id="sig-1").start_workflow(receiver, 3, None)
    engine.send_signal("sig-1", "item", 1)
    engine.send_signal("sig-1", "item", {"two": 2})
    _wait_status(engine, "sig-1", RunStatus.WAITING)
    engine.send_signal("sig-1", "item", None)
    assert handle.result(timeout=5) == [1, {"two": 2}, None]


def test_signal_timeout(engine: durably.Engine) -> None:
    assert engine.start_workflow(receiver, 1, 0.2).result(timeout=5) == [None]
    assert "before the timeout" in engine.start_workflow(receiver_raises).result(timeout=5)


def test_async_signals(engine: durably.Engine) -> None:
    handle = engine.start_workflow(receiver_async)
    _wait_status(engine, handle.run_id, RunStatus.WAITING)
    engine.send_signal(handle.run_id, "item", "hello")
    assert handle.result(timeout=5) == ["hello", None]


def test_signal_errors(engine: durably.Engine) -> None:
    with pytest.raises(durably.RunNotFound):
        engine.send_signal("missing", "item", 1)
    done = engine.start_workflow(receiver, 0, None)
    done.result(timeout=5)
    with pytest.raises(durably.InvalidRunState, match="completed"):
        engine.send_signal(done.run_id, "item", 1)
    waiting = engine.start_workflow(receiver, 1, None)
    with pytest.raises(durably.SerializationError):
        engine.send_signal(waiting.run_id, "item", object())
    engine.send_signal(waiting.run_id, "item", "fine")
    assert waiting.result(timeout=5) == ["fine"]
    with pytest.raises(durably.NotInWorkflow):
        durably.wait_for_signal("item")


# -- events ---------------------------------------------------------------------------
@durably.workflow(name="p.events")
def publisher() -> str:
    durably.set_event("stage", "started")
    durably.wait_for_signal("continue")
    durably.set_event("stage", {"done": True})
    return "ok"


def test_events(engine: durably.Engine) -> None:
    handle = engine.start_workflow(publisher)
    assert engine.get_event(handle.run_id, "stage", timeout=5) == "started"
    assert engine.get_event(handle.run_id, "other", timeout=0.1) is None
    engine.send_signal(handle.run_id, "continue")
    handle.result(timeout=5)
    assert engine.get_event(handle.run_id, "stage") == {"done": True}
    assert engine.get_event(handle.run_id, "never-set") is None  # the run ended without it
    with pytest.raises(durably.NotInWorkflow):
        durably.set_event("k", 1)


# -- deterministic values and patches -----------------------------------------------
@durably.workflow(name="p.values")
def values() -> list[str]:
    made = [durably.now().isoformat(), str(durably.uuid4()), repr(durably.random())]
    note("recorded")
    maybe_fail()
    return made


def test_values_are_replayed(engine: durably.Engine) -> None:
    FLAGS["fail"] = True
    handle = engine.start_workflow(values)
    with pytest.raises(durably.WorkflowFailed):
        handle.result(timeout=5)
    recorded = [s for s in engine.steps(handle.run_id) if s.kind in ("now", "uuid4", "random")]
    assert [s.kind for s in recorded] == ["now", "uuid4", "random"]
    FLAGS["fail"] = False
    made = engine.retry(handle.run_id).result(timeout=5)
    assert datetime.fromisoformat(made[0]).timestamp() == recorded[0].output
    assert made[1] == recorded[1].output and made[2] == repr(recorded[2].output)
    assert isinstance(durably.now(), datetime) and 0 <= durably.random() < 1


@durably.workflow(name="p.patch")
def evolving() -> str:
    note("first")
    maybe_fail()
    if FLAGS["patched"]:
        return "new path" if durably.patched("change-1") else "old path"
    return "old path"


def test_patched(engine: durably.Engine) -> None:
    FLAGS.update(fail=True, patched=False)
    old = engine.start_workflow(evolving)
    with pytest.raises(durably.WorkflowFailed):
        old.result(timeout=5)
    FLAGS.update(fail=False, patched=True)
    assert engine.retry(old.run_id).result(timeout=5) == "new path"  # reached it live
    assert engine.start_workflow(evolving).result(timeout=5) == "new path"
    assert durably.patched("outside") is True


@durably.workflow(name="p.patch_replay")
def patch_replay() -> str:
    branch = "old"
    if FLAGS["patched"] and durably.patched("change-2"):
        branch = "new"
    note(branch)
    maybe_fail()
    return branch


def test_patched_is_false_for_history_recorded_before_the_patch(engine: durably.Engine) -> None:
    FLAGS.update(fail=True, patched=False)
    old = engine.start_workflow(patch_replay)
    with pytest.raises(durably.WorkflowFailed):
        old.result(timeout=5)
    FLAGS.update(fail=False, patched=True)
    assert engine.retry(old.run_id).result(timeout=5) == "old"  # keeps its recorded path
    assert engine.start_workflow(patch_replay).result(timeout=5) == "new"


@durably.workflow(name="p.reordered")
def reordered() -> str:
    if FLAGS["patched"]:
        note("x")
        durably.sleep(0)
    else:
        durably.sleep(0)
        note("x")
    maybe_fail()
    return "done"


def test_reordered_primitive_is_nondeterminism(engine: durably.Engine) -> None:
    FLAGS.update(fail=True, patched=False)
    handle = engine.start_workflow(reordered)
    with pytest.raises(durably.WorkflowFailed):
        handle.result(timeout=5)
    FLAGS.update(fail=False, patched=True)
    with pytest.raises(durably.WorkflowFailed) as info:
        engine.retry(handle.run_id).result(timeout=5)
    assert info.value.error_type == "NonDeterminismError"
    assert "sleep 'sleep'" in info.value.error_message
    assert "step 'note'" in info.value.error_message


def test_timers_use_the_database_clock(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # this host is an hour behind
    with durably.Engine(store_url, poll_interval=0.05) as engine:
        handle = engine.start_workflow(sleeper, 1.5)
        time.sleep(0.7)
        assert engine.get_run(handle.run_id).status is RunStatus.SLEEPING
        assert handle.result(timeout=5) == "after"

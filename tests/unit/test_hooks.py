"""Typed hooks: only the events a subscriber overrides are delivered, and a failing
subscriber costs the engine nothing."""

from __future__ import annotations

import logging
import threading
from collections import deque

import pytest

from durably import deferral
from durably.hooks import (
    BatchCommitted,
    Hooks,
    RunEnded,
    RunStarting,
    StepStarted,
    Subscriber,
    carrier,
    emit,
)
from durably.records import RunStatus


class Steps(Subscriber):
    def __init__(self) -> None:
        self.seen: list[StepStarted] = []

    def step_started(self, event: StepStarted) -> None:
        self.seen.append(event)


def test_only_overridden_events_are_subscribed() -> None:
    hooks = Hooks()
    assert not hooks.step_started and not hooks.run_ended
    watcher = Steps()
    unsubscribe = hooks.subscribe(watcher)
    assert len(hooks.step_started) == 1
    assert not hooks.run_ended and not hooks.batch_committed  # nothing built for these
    event = StepStarted("r1", "wf", "charge", 0, 1)
    emit(hooks.step_started, event)
    assert watcher.seen == [event]
    unsubscribe()
    assert len(hooks.step_started) == 0


def test_a_callback_may_be_any_callable_attribute_of_the_instance() -> None:
    class Queued(Subscriber):
        def __init__(self) -> None:
            self.seen: deque[object] = deque()
            self.step_started = self.seen.append  # type: ignore[assignment]

    hooks, watcher = Hooks(), Queued()
    unsubscribe = hooks.subscribe(watcher)
    assert len(hooks.step_started) == 1 and not hooks.step_finished
    event = StepStarted("r1", "wf", "charge", 0, 1)
    emit(hooks.step_started, event)
    assert list(watcher.seen) == [event]
    unsubscribe()
    assert not hooks.step_started


def test_a_failing_subscriber_is_logged_and_the_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: list[RunEnded] = []

    class Broken(Subscriber):
        def run_ended(self, event: RunEnded) -> None:
            raise RuntimeError("subscriber bug")

    class Fine(Subscriber):
        def run_ended(self, event: RunEnded) -> None:
            heard.append(event)

    hooks = Hooks()
    hooks.subscribe(Broken())
    hooks.subscribe(Fine())
    with caplog.at_level(logging.ERROR, logger="durably.hooks"):
        emit(hooks.run_ended, RunEnded("r1", "wf", RunStatus.COMPLETED))
    assert len(heard) == 1
    assert "subscriber failed on RunEnded" in caplog.text


def test_two_subscribers_of_one_class_stay_apart() -> None:
    hooks = Hooks()

    class Batches(Subscriber):
        def __init__(self) -> None:
            self.sizes: list[int] = []

        def batch_committed(self, event: BatchCommitted) -> None:
            self.sizes.append(event.size)

    first, second = Batches(), Batches()
    hooks.subscribe(first)
    drop_second = hooks.subscribe(second)
    drop_second()
    emit(hooks.batch_committed, BatchCommitted(3, 0.001))
    assert first.sizes == [3] and second.sizes == []


class Threads(Subscriber):
    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []

    def step_started(self, event: StepStarted) -> None:
        self.seen.append((event.seq, threading.current_thread().name))


def test_deferred_subscribers_hear_in_order_on_the_hooks_thread() -> None:
    hooks = Hooks()
    assert hooks.flush()  # nothing deferred yet: nothing to wait for
    watcher = Threads()
    unsubscribe = hooks.subscribe(watcher, deferred=True)
    for seq in range(100):
        emit(hooks.step_started, StepStarted("r1", "wf", "charge", seq, 1))
    assert hooks.flush()
    assert watcher.seen == [(seq, "durably-hooks") for seq in range(100)]
    unsubscribe()
    assert not hooks.step_started


def test_deferred_events_past_the_bound_are_dropped_and_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(deferral, "MAX_PENDING", 10)
    stuck, seen = threading.Event(), []

    class Stuck(Subscriber):  # a log handler writing to a pipe nobody reads
        def step_started(self, event: StepStarted) -> None:
            stuck.wait(10)
            seen.append(event.seq)

    hooks = Hooks()
    hooks.subscribe(Stuck(), deferred=True)
    for seq in range(50):
        emit(hooks.step_started, StepStarted("r1", "wf", "charge", seq, 1))
    assert len(seen) == 0  # the emitting thread went on all the same
    stuck.set()
    assert hooks.flush()
    assert 10 <= len(seen) <= 11 and seen == sorted(seen)  # the first may have been taken
    (warning,) = [r for r in caplog.records if "fell behind" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert f"{50 - len(seen)} events dropped" in warning.getMessage()
    emit(hooks.step_started, StepStarted("r1", "wf", "charge", 50, 1))
    assert hooks.flush() and seen[-1] == 50  # caught up: delivered again


def test_a_log_handler_that_raises_stops_nothing() -> None:
    # A log shipper whose backend is down: its emit() raises, also when the failure of
    # the subscriber that wrote through it is reported through it.
    class Shipper(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise ConnectionError("log backend unreachable")

    class Logs(Subscriber):
        def step_started(self, event: StepStarted) -> None:
            logging.getLogger("durably.worker").warning("step %s", event.seq)

    seen: list[int] = []

    class After(Subscriber):
        def step_started(self, event: StepStarted) -> None:
            seen.append(event.seq)

    shipper = Shipper()
    root = logging.getLogger()
    root.addHandler(shipper)
    try:
        hooks = Hooks()
        hooks.subscribe(Logs(), deferred=True)
        hooks.subscribe(After(), deferred=True)
        for seq in range(3):
            emit(hooks.step_started, StepStarted("r1", "wf", "charge", seq, 1))
        assert hooks.flush(5)  # the hooks thread lives on
        assert seen == [0, 1, 2]  # and the listener after the failing one still hears
    finally:
        root.removeHandler(shipper)


def test_what_must_answer_at_once_is_never_deferred() -> None:
    class Carrier(Subscriber):
        def run_starting(self, event: RunStarting) -> str | None:
            return "ctx"

    with pytest.raises(ValueError, match="cannot be deferred"):
        Hooks().subscribe(Carrier(), deferred=True)
    hooks = Hooks()
    hooks.subscribe(Carrier())
    assert carrier(hooks.run_starting, RunStarting("r1", "wf", "default", "start")) == "ctx"

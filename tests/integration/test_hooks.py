"""The engine's hooks: every event of a run's life, on both backends, and none on replay."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import TypeVar

import pytest

import durably
from durably.hooks import (
    BatchCommitted,
    RunClaimed,
    RunEnded,
    RunLost,
    RunSuspended,
    StepFinished,
    StepStarted,
    Subscriber,
)
from durably.records import RunStatus

ATTEMPTS: Counter[str] = Counter()
E = TypeVar("E")


class Recorder(Subscriber):
    """Every event, in the order the engine emitted them."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.lock = threading.Lock()

    def _add(self, event: object) -> None:
        with self.lock:
            self.events.append(event)

    def run_claimed(self, event: RunClaimed) -> None:
        self._add(event)

    def step_started(self, event: StepStarted) -> None:
        self._add(event)

    def step_finished(self, event: StepFinished) -> None:
        self._add(event)

    def run_suspended(self, event: RunSuspended) -> None:
        self._add(event)

    def run_ended(self, event: RunEnded) -> None:
        self._add(event)

    def run_lost(self, event: RunLost) -> None:
        self._add(event)

    def batch_committed(self, event: BatchCommitted) -> None:
        self._add(event)

    def of(self, kind: type[E], run_id: str | None = None) -> list[E]:
        with self.lock:
            return [
                e
                for e in self.events
                if isinstance(e, kind) and (run_id is None or getattr(e, "run_id", None) == run_id)
            ]


@durably.step
def prepare(x: int) -> int:
    return x + 1


@durably.step(retries=2, backoff=0.01)
def flaky(x: int) -> int:
    ATTEMPTS[f"flaky-{x}"] += 1
    if ATTEMPTS[f"flaky-{x}"] == 1:
        raise RuntimeError("first attempt fails")
    return x * 10


@durably.workflow(name="hooks.life")
def life(x: int) -> int:
    a = prepare(x)
    durably.sleep("1.2s")  # long enough to free the worker: suspended, then claimed again
    return flaky(a)


def test_a_runs_life_as_events(engine: durably.Engine) -> None:
    recorder = Recorder()
    unsubscribe = engine.hooks.subscribe(recorder)
    key = int(time.time() * 1000) % 100_000
    handle = engine.start_workflow(life, key)
    assert handle.result(timeout=15) == (key + 1) * 10
    deadline = time.monotonic() + 5
    while not recorder.of(RunEnded, handle.run_id):  # told once the final write committed
        assert time.monotonic() < deadline, recorder.events
        time.sleep(0.01)
    unsubscribe()
    run = handle.run_id

    claims = recorder.of(RunClaimed, run)
    assert [(c.attempt, c.replaying) for c in claims] == [(1, False), (2, True)]
    # Only bodies that ran: "prepare" once (replayed after the sleep, not run), "flaky" twice.
    started = [(e.step, e.attempt) for e in recorder.of(StepStarted, run)]
    assert started == [("prepare", 1), ("flaky", 1), ("flaky", 2)]
    finished = [(e.step, e.attempt, e.status) for e in recorder.of(StepFinished, run)]
    assert finished == [
        ("prepare", 1, "completed"),
        ("flaky", 1, "retrying"),
        ("flaky", 2, "completed"),
    ]
    retrying = recorder.of(StepFinished, run)[1]
    assert retrying.error is not None and retrying.error.type == "RuntimeError"
    assert all(e.seconds >= 0 for e in recorder.of(StepFinished, run))
    (suspended,) = recorder.of(RunSuspended, run)
    assert suspended.status is RunStatus.SLEEPING and suspended.wake_at is not None
    (ended,) = recorder.of(RunEnded, run)
    assert (ended.status, ended.error, ended.workflow) == (RunStatus.COMPLETED, None, "hooks.life")
    batches = recorder.of(BatchCommitted)
    assert batches and all(b.size >= 1 and b.seconds >= 0 for b in batches)


@durably.workflow(name="hooks.fails")
def fails() -> None:
    raise ValueError("no")


def test_a_failed_run_ends_with_its_error(engine: durably.Engine) -> None:
    recorder = Recorder()
    engine.hooks.subscribe(recorder)
    handle = engine.start_workflow(fails)
    with pytest.raises(durably.WorkflowFailed):
        handle.result(timeout=10)
    deadline = time.monotonic() + 5
    while not recorder.of(RunEnded, handle.run_id):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (ended,) = recorder.of(RunEnded, handle.run_id)
    assert ended.status is RunStatus.FAILED
    assert ended.error is not None and ended.error.type == "ValueError"


STOLEN = threading.Event()


@durably.step
def stolen_from_under_me(run_id: str) -> str:
    """Another worker takes the run over while this body runs."""
    engine = ENGINES[0]
    executor = engine.executor
    assert executor is not None
    if STOLEN.is_set():  # executed again after this engine took it back: no second theft
        return "again"
    executor_owner = executor.owner
    engine.store.release_owner(executor_owner)
    store = engine.store
    # This engine may claim the released run before the thief does: release it again.
    while not store.transact(lambda tx: store.claim_runs(tx, "thief", 10, 60.0, ["hooks.stolen"])):
        store.release_owner(executor_owner)
    STOLEN.set()
    return "late"


ENGINES: list[durably.Engine] = []


@durably.workflow(name="hooks.stolen")
def stolen() -> str:
    return stolen_from_under_me("x")


def test_a_lost_lease_is_told(engine: durably.Engine) -> None:
    recorder = Recorder()
    engine.hooks.subscribe(recorder)
    ENGINES[:] = [engine]
    STOLEN.clear()
    handle = engine.start_workflow(stolen)
    assert STOLEN.wait(10)
    deadline = time.monotonic() + 10
    while not recorder.of(RunLost, handle.run_id):
        assert time.monotonic() < deadline, recorder.events
        time.sleep(0.01)
    assert not recorder.of(RunEnded, handle.run_id)
    row = engine.store.get_run(handle.run_id)
    assert row is not None and row.owner == "thief"  # the late checkpoint was refused
    assert engine.steps(handle.run_id) == []

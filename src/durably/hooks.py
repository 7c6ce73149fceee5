"""Typed hooks: what an engine tells the code that watches it (logs, metrics, traces).

A :class:`Subscriber` overrides the methods of the events it cares about and is
attached with ``engine.hooks.subscribe(subscriber)``. With nobody subscribed an
event costs one truthiness test of an empty tuple: the event object is not even
built. A subscriber that raises is logged and the engine goes on; it must be
quick, as it runs on the thread that emits (a worker thread, the event loop, the
writer).

Events of a step carry what replay skips: ``step_started`` and ``step_finished``
are emitted only when the step's body really runs, never when its recorded
result is replayed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from durably.errors import ErrorInfo
from durably.records import RunStatus

log = logging.getLogger("durably.hooks")
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class RunClaimed:
    """A worker took a run to execute it (a start, a wake-up, a retry, a recovery)."""

    run_id: str
    workflow: str
    queue: str
    owner: str
    attempt: int  # executions of this run so far, this one included
    replaying: bool  # the run has a journal: this execution replays it first


@dataclass(frozen=True, slots=True)
class StepStarted:
    """A step's body is about to run (an attempt, not a replay)."""

    run_id: str
    workflow: str
    step: str
    seq: int
    attempt: int


@dataclass(frozen=True, slots=True)
class StepFinished:
    """A step's attempt ended: ``completed``, ``failed`` (for good) or ``retrying``."""

    run_id: str
    workflow: str
    step: str
    seq: int
    attempt: int
    status: str
    seconds: float  # the body's duration
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class RunSuspended:
    """An execution ended with the run waiting: sleeping, for a signal or child, or a retry."""

    run_id: str
    workflow: str
    status: RunStatus
    wake_at: float | None  # store time; None until woken


@dataclass(frozen=True, slots=True)
class RunEnded:
    """A run reached a terminal status (its final write committed)."""

    run_id: str
    workflow: str
    status: RunStatus
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class RunLost:
    """This worker lost a run it was executing: another took its lease over."""

    run_id: str
    workflow: str
    epoch: int


@dataclass(frozen=True, slots=True)
class BatchCommitted:
    """The group-commit writer committed one transaction of ``size`` writes."""

    size: int
    seconds: float


class Subscriber:
    """Override the methods of the events to receive; the others cost nothing."""

    def run_claimed(self, event: RunClaimed) -> None: ...
    def step_started(self, event: StepStarted) -> None: ...
    def step_finished(self, event: StepFinished) -> None: ...
    def run_suspended(self, event: RunSuspended) -> None: ...
    def run_ended(self, event: RunEnded) -> None: ...
    def run_lost(self, event: RunLost) -> None: ...
    def batch_committed(self, event: BatchCommitted) -> None: ...


_EVENTS = (
    "run_claimed",
    "step_started",
    "step_finished",
    "run_suspended",
    "run_ended",
    "run_lost",
    "batch_committed",
)


class Hooks:
    """The subscribers of one engine, as one tuple of callbacks per event."""

    def __init__(self) -> None:
        self.run_claimed: tuple[Callable[[RunClaimed], None], ...] = ()
        self.step_started: tuple[Callable[[StepStarted], None], ...] = ()
        self.step_finished: tuple[Callable[[StepFinished], None], ...] = ()
        self.run_suspended: tuple[Callable[[RunSuspended], None], ...] = ()
        self.run_ended: tuple[Callable[[RunEnded], None], ...] = ()
        self.run_lost: tuple[Callable[[RunLost], None], ...] = ()
        self.batch_committed: tuple[Callable[[BatchCommitted], None], ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Send the events ``subscriber`` overrides to it; returns the unsubscriber."""
        chosen = [
            (name, getattr(subscriber, name))
            for name in _EVENTS
            if getattr(type(subscriber), name) is not getattr(Subscriber, name)
        ]
        with self._lock:
            for name, method in chosen:
                setattr(self, name, (*getattr(self, name), method))

        def unsubscribe() -> None:
            with self._lock:
                for name, method in chosen:
                    setattr(self, name, tuple(m for m in getattr(self, name) if m != method))

        return unsubscribe


def emit(listeners: tuple[Callable[[E], None], ...], event: E) -> None:
    """Give ``event`` to each listener; one that raises is logged, never propagated."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            log.exception("a hook subscriber failed on %s", type(event).__name__)


__all__ = [
    "BatchCommitted",
    "Hooks",
    "RunClaimed",
    "RunEnded",
    "RunLost",
    "RunSuspended",
    "StepFinished",
    "StepStarted",
    "Subscriber",
    "emit",
]

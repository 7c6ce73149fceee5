"""Typed hooks: what an engine tells the code that watches it (logs, metrics, traces).

A :class:`Subscriber` overrides the methods of the events it cares about and is
attached with ``engine.hooks.subscribe(subscriber)``. With nobody subscribed an
event costs one truthiness test of an empty tuple: the event object is not even
built. A subscriber that raises is logged and the engine goes on; it must be
quick, as it runs on the thread that emits (a worker thread, the event loop, the
writer).

Events are named tuples: immutable, and built in well under a microsecond (the
engine builds one per step when someone listens). Events of a step carry what
replay skips: ``step_started`` and ``step_finished`` are emitted only when the
step's body really runs, never when its recorded result is replayed.

Three methods are more than notifications. ``run_starting`` is asked, in the code
that starts a run (a caller, a parent run, a schedule's tick), for a carrier to
store with the run (a trace context); ``run_executing`` and ``step_executing``
return context managers that the engine enters around one execution of a run (on
the thread or task that executes it) and around one attempt of a step's body, so
what they set up (a current span) is current for the user's code inside.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from types import TracebackType
from typing import NamedTuple, TypeVar

from durably.deferral import Deferral
from durably.errors import ErrorInfo
from durably.records import RunStatus

log = logging.getLogger("durably.hooks")
#: ``made(Event, (field, ...))`` builds an event from all of its fields in order, in C
#: (a named tuple's own constructor is a Python function): the hot paths' way.
made = tuple.__new__
E = TypeVar("E")


class RunStarting(NamedTuple):
    """A run is about to be written: by a caller (``origin="start"``), by its parent
    run (``"child"``), by a schedule's tick (``"schedule"``)."""

    run_id: str
    workflow: str
    queue: str
    origin: str
    parent_id: str | None = None
    schedule_id: str | None = None


class RunStarted(NamedTuple):
    """A run was created (its write committed; not for a start that found its run):
    ``origin`` as :class:`RunStarting`'s, or ``"continue"`` for the next run of a
    ``continue_as_new`` chain."""

    run_id: str
    workflow: str
    queue: str
    origin: str


class RunClaimed(NamedTuple):
    """A worker took a run to execute it (a start, a wake-up, a retry, a recovery)."""

    run_id: str
    workflow: str
    queue: str
    owner: str
    attempt: int  # executions of this run so far, this one included
    replaying: bool  # the run has a journal: this execution replays it first
    #: Taken back from a worker that died or whose lease ran out.
    recovered: bool = False
    waited: float = 0.0  # seconds from when it was due to this claim (0: started here)
    parent_id: str | None = None
    trace: str | None = None  # what ``run_starting`` gave to store with the run
    created_at: float = 0.0  # store time
    #: Created by this process already claimed (a start here), not taken from the queue.
    started_here: bool = False


class StepStarted(NamedTuple):
    """A step's body is about to run (an attempt, not a replay)."""

    run_id: str
    workflow: str
    step: str
    seq: int
    attempt: int


class StepFinished(NamedTuple):
    """A step's attempt ended: ``completed``, ``failed`` (for good) or ``retrying``."""

    run_id: str
    workflow: str
    step: str
    seq: int
    attempt: int
    status: str
    seconds: float  # the body's duration
    error: ErrorInfo | None = None


class RunSuspended(NamedTuple):
    """An execution ended with the run waiting: sleeping, for a signal or child, or a retry."""

    run_id: str
    workflow: str
    status: RunStatus
    wake_at: float | None  # store time; None until woken


class RunEnded(NamedTuple):
    """A run reached a terminal status (its final write committed)."""

    run_id: str
    workflow: str
    status: RunStatus
    error: ErrorInfo | None = None
    seconds: float = 0.0  # from its creation to its end
    queue: str = "default"
    parent_id: str | None = None  # the run that started it: woken by its end


class RunLost(NamedTuple):
    """This worker lost a run it was executing: another took its lease over."""

    run_id: str
    workflow: str
    epoch: int


class RunReleased(NamedTuple):
    """This worker gave a run up unfinished: the database failed one of its writes (the
    run is released for a later execution, here or elsewhere)."""

    run_id: str
    workflow: str
    reason: str


class SignalSent(NamedTuple):
    """A signal was sent to a run (the send committed), from the code that sent it."""

    run_id: str
    name: str


class TicksDecided(NamedTuple):
    """A worker decided a due schedule: what became of the ticks due since its last
    decision (counts; ``started`` are runs written with the decision)."""

    schedule_id: str
    workflow: str
    started: int
    skipped: int
    buffered: int
    missed: int


class BatchCommitted(NamedTuple):
    """The group-commit writer committed one transaction of ``size`` writes."""

    size: int
    seconds: float


Scope = AbstractContextManager[object]


class Subscriber:
    """Override the methods of the events to receive; the others cost nothing. An
    override may also be an instance attribute, any callable (``deque.append``)."""

    def run_starting(self, event: RunStarting) -> str | None:
        """A carrier (text) to store with the run, given back in :class:`RunClaimed`."""
        return None

    def run_started(self, event: RunStarted) -> None: ...
    def run_claimed(self, event: RunClaimed) -> None: ...

    def run_executing(self, event: RunClaimed) -> Scope:
        """Entered around one execution of the run, on the thread or task running it."""
        raise NotImplementedError

    def step_started(self, event: StepStarted) -> None: ...

    def step_executing(self, event: StepStarted) -> Scope:
        """Entered around one attempt of a step's body (never for a replayed step)."""
        raise NotImplementedError

    def step_finished(self, event: StepFinished) -> None: ...
    def run_suspended(self, event: RunSuspended) -> None: ...
    def run_ended(self, event: RunEnded) -> None: ...
    def run_lost(self, event: RunLost) -> None: ...
    def run_released(self, event: RunReleased) -> None: ...
    def batch_committed(self, event: BatchCommitted) -> None: ...
    def signal_sent(self, event: SignalSent) -> None: ...
    def ticks_decided(self, event: TicksDecided) -> None: ...


_IMMEDIATE = ("run_starting", "run_executing", "step_executing")
_EVENTS = (
    "run_starting",
    "run_started",
    "run_claimed",
    "run_executing",
    "step_started",
    "step_executing",
    "step_finished",
    "run_suspended",
    "run_ended",
    "run_lost",
    "run_released",
    "batch_committed",
    "signal_sent",
    "ticks_decided",
)


class Hooks:
    """The subscribers of one engine, as one tuple of callbacks per event."""

    def __init__(self) -> None:
        self.run_starting: tuple[Callable[[RunStarting], str | None], ...] = ()
        self.run_started: tuple[Callable[[RunStarted], None], ...] = ()
        self.run_claimed: tuple[Callable[[RunClaimed], None], ...] = ()
        self.run_executing: tuple[Callable[[RunClaimed], Scope], ...] = ()
        self.step_started: tuple[Callable[[StepStarted], None], ...] = ()
        self.step_executing: tuple[Callable[[StepStarted], Scope], ...] = ()
        self.step_finished: tuple[Callable[[StepFinished], None], ...] = ()
        self.run_suspended: tuple[Callable[[RunSuspended], None], ...] = ()
        self.run_ended: tuple[Callable[[RunEnded], None], ...] = ()
        self.run_lost: tuple[Callable[[RunLost], None], ...] = ()
        self.run_released: tuple[Callable[[RunReleased], None], ...] = ()
        self.batch_committed: tuple[Callable[[BatchCommitted], None], ...] = ()
        self.signal_sent: tuple[Callable[[SignalSent], None], ...] = ()
        self.ticks_decided: tuple[Callable[[TicksDecided], None], ...] = ()
        self._lock = threading.Lock()
        self._deferral = Deferral(_deliver)  # the hooks thread

    def after_fork(self) -> None:
        """In a forked child: the parent's hooks thread is not here; start afresh."""
        self._lock = threading.Lock()
        self._deferral = Deferral(_deliver)

    def subscribe(self, subscriber: Subscriber, *, deferred: bool = False) -> Callable[[], None]:
        """Send the events ``subscriber`` overrides to it; returns the unsubscriber.

        ``deferred``: its events are handed, in order, to one thread of this engine's
        that calls it there, so the threads that emit (a run's, the writer's) spend a
        queue append on it whatever it does (logging, metrics); past
        ``durably.deferral.MAX_PENDING`` waiting, events are dropped and counted.
        :meth:`flush` waits until what was emitted so far was delivered.
        ``run_starting`` and the scopes are never deferred: what they return is needed
        at once.
        """
        chosen = [
            (name, method)
            for name in _EVENTS
            if getattr(method := getattr(subscriber, name), "__func__", None)
            is not getattr(Subscriber, name)
        ]
        if deferred:
            if any(name in _IMMEDIATE for name, _ in chosen):
                raise ValueError("run_starting and the scopes cannot be deferred")
            chosen = [(name, functools.partial(self.later, method)) for name, method in chosen]
        with self._lock:
            for name, method in chosen:
                setattr(self, name, (*getattr(self, name), method))

        def unsubscribe() -> None:
            with self._lock:
                for name, method in chosen:
                    setattr(self, name, tuple(m for m in getattr(self, name) if m != method))

        return unsubscribe

    def later(self, listener: Callable[[E], None], event: E) -> None:
        """Call ``listener(event)`` on this engine's hooks thread, after what was handed
        to it before (what deferred subscribers get; see :meth:`subscribe`)."""
        self._deferral.put(listener, event)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the events emitted so far reached their deferred subscribers;
        False if that took longer than ``timeout``."""
        return self._deferral.flush(timeout)


def emit(listeners: tuple[Callable[[E], None], ...], event: E) -> None:
    """Give ``event`` to each listener; one that raises is logged, never propagated."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            _report("a hook subscriber failed on %s", type(event).__name__)


def _report(message: str, kind: str) -> None:
    """Log a subscriber's failure; when the log handler is what fails (a log shipper
    whose backend is down), say nothing more: the next listener still gets the event."""
    with suppress(Exception):
        log.exception(message, kind)


def _deliver(listener: Callable[[E], None], event: E) -> None:
    emit((listener,), event)


def carrier(
    listeners: tuple[Callable[[RunStarting], str | None], ...], event: RunStarting
) -> str | None:
    """The first carrier the ``run_starting`` listeners give (None if none gives one)."""
    for listener in listeners:
        try:
            found = listener(event)
        except Exception:
            _report("a hook subscriber failed on %s", "RunStarting")
            continue
        if found is not None:
            return found
    return None


class Scoped(AbstractContextManager[None]):
    """Enter the scopes the listeners give for ``event``; leave them in reverse order.

    A listener that raises, entering or leaving, is logged and skipped: the user's code
    runs whatever the subscribers do.
    """

    __slots__ = ("_entered", "_event", "_listeners")

    def __init__(self, listeners: tuple[Callable[[E], Scope], ...], event: E) -> None:
        self._listeners: tuple[Callable[[object], Scope], ...] = listeners  # type: ignore[assignment]
        self._event: object = event
        self._entered: list[Scope] = []

    def __enter__(self) -> None:
        for listener in self._listeners:
            try:
                scope = listener(self._event)
                scope.__enter__()
            except Exception:
                log.exception("a hook subscriber failed on %s", type(self._event).__name__)
            else:
                self._entered.append(scope)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        while self._entered:
            try:
                self._entered.pop().__exit__(kind, error, tb)
            except Exception:
                log.exception("a hook subscriber failed leaving %s", type(self._event).__name__)


__all__ = [
    "BatchCommitted",
    "Hooks",
    "RunClaimed",
    "RunEnded",
    "RunLost",
    "RunReleased",
    "RunStarted",
    "RunStarting",
    "RunSuspended",
    "Scope",
    "Scoped",
    "SignalSent",
    "StepFinished",
    "StepStarted",
    "Subscriber",
    "TicksDecided",
    "carrier",
    "emit",
]

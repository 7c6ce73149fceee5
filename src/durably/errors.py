"""The exceptions durably raises, all under :class:`DurablyError`.

Errors that cross a process boundary (a step that failed, a run that failed) are
carried as :class:`ErrorInfo`: the remote type name, message and traceback text.
Nothing is unpickled to rebuild them.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from durably.durations import parse_duration


@dataclass(frozen=True)
class ErrorInfo:
    """A recorded error: what type it was, what it said, and where it happened."""

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """The best description of ``exc`` that can be built, whatever its methods do."""
        return cls(type=type(exc).__qualname__, message=describe(exc), traceback=_traceback(exc))

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_json(cls, data: Any) -> ErrorInfo:
        return cls(
            type=str(data.get("type", "Exception")),
            message=str(data.get("message", "")),
            traceback=str(data.get("traceback", "")),
        )


def describe(exc: BaseException) -> str:
    """``str(exc)``, or what can be said of it when its ``__str__`` raises."""
    try:
        return str(exc)
    except BaseException as inner:  # user code's __str__: anything may come out of it
        return f"<unprintable {type(exc).__qualname__}: str() raised {type(inner).__qualname__}>"


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def in_durably(filename: str) -> bool:
    """Whether a traceback frame of ``filename`` is durably's own code."""
    return filename.startswith(_PACKAGE)


def _traceback(exc: BaseException) -> str:
    try:
        summary = traceback.TracebackException.from_exception(exc)
        if not os.environ.get("DURABLY_DEBUG"):
            _hide_own_frames(summary, exc)
        return "".join(summary.format())
    except BaseException:  # a chain too odd to format: keep the frames at least
        try:
            frames = "".join(traceback.format_tb(exc.__traceback__))
        except BaseException:
            frames = ""
        return f"{frames}{type(exc).__qualname__}: {describe(exc)}\n"


def _hide_own_frames(summary: traceback.TracebackException, exc: BaseException) -> None:
    """Leave out durably's own frames (the engine between a workflow and its steps), in the
    whole chain. An error of durably's own loses them all; any other keeps them where they
    are all it has (a bug in durably)."""
    stack = summary.stack
    theirs = [frame for frame in stack if not in_durably(frame.filename)]
    if len(theirs) < len(stack) and (theirs or isinstance(exc, DurablyError)):
        summary.stack = traceback.StackSummary.from_list(theirs)
    if summary.__cause__ is not None and exc.__cause__ is not None:
        _hide_own_frames(summary.__cause__, exc.__cause__)
    if summary.__context__ is not None and exc.__context__ is not None:
        _hide_own_frames(summary.__context__, exc.__context__)
    grouped = getattr(exc, "exceptions", ())  # the summary holds the first 15 of a group
    for inner, raised in zip(summary.exceptions or (), grouped, strict=False):
        _hide_own_frames(inner, raised)


class DurablyError(Exception):
    """Base class of every error durably raises."""


class RetryableError(DurablyError):
    """Raise from a step to ask for a retry, optionally after ``retry_after`` (seconds, or a
    duration such as ``"2s"``), in place of the step's backoff."""

    def __init__(
        self, message: str = "", retry_after: float | str | timedelta | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = None if retry_after is None else parse_duration(retry_after)


class FatalError(DurablyError):
    """Raise from a step to fail it at once: it is never retried."""


class Interrupted(FatalError):
    """User code raised ``KeyboardInterrupt`` or ``SystemExit`` inside a run.

    It fails the step (never retried) or the run, never the engine: such an error
    escaping a task would stop the event loop every async run shares.
    """

    @classmethod
    def of(cls, exc: BaseException, where: str) -> Interrupted:
        interrupted = cls(f"{type(exc).__qualname__} raised {where}: {describe(exc)}")
        interrupted.__cause__ = exc
        return interrupted


class _RemoteError(DurablyError):
    """An error that happened elsewhere and is described by an :class:`ErrorInfo`."""

    def __init__(self, message: str, error: ErrorInfo) -> None:
        super().__init__(message)
        self.error = error

    @property
    def error_type(self) -> str:
        return self.error.type

    @property
    def error_message(self) -> str:
        return self.error.message

    @property
    def remote_traceback(self) -> str:
        return self.error.traceback


class StepFailed(_RemoteError):
    """A step exhausted its retries (or failed fatally).

    The workflow sees this same type on first execution and on replay; it carries
    the original error's type name, message and traceback text.
    """

    def __init__(self, step: str, error: ErrorInfo, attempts: int) -> None:
        super().__init__(
            f"step {step!r} failed after {attempts} attempt(s): {error.type}: {error.message}",
            error,
        )
        self.step = step
        self.attempts = attempts


class StepTimeout(DurablyError):
    """A step ran past its timeout; it goes through the step's retry policy."""


class WorkflowFailed(_RemoteError):
    """Raised by ``RunHandle.result()`` when the run ended in failure."""

    def __init__(self, run_id: str, error: ErrorInfo) -> None:
        super().__init__(f"run {run_id} failed: {error.type}: {error.message}", error)
        self.run_id = run_id


class WorkflowCancelled(DurablyError):
    """The run was cancelled: raised inside it at its next durable call, and by ``result()``."""


class WorkflowTimedOut(WorkflowCancelled):
    """The run ran past its workflow's ``timeout`` and was cancelled (its compensations
    ran); raised by ``result()``."""


class RecoveryLimitExceeded(DurablyError):
    """A run was taken back from workers that died executing it, again and again, without
    progress: it may be what kills them. It is failed; ``engine.retry`` runs it again."""


class NoWorker(DurablyError):
    """Waiting for a run that nothing would ever execute: this engine does not execute
    runs, and no live worker executes the run's workflow on its queue."""


class ChildFailed(_RemoteError):
    """A child run failed or was cancelled; raised in the parent (the same on replay)."""

    def __init__(self, run_id: str, error: ErrorInfo) -> None:
        super().__init__(f"child run {run_id} failed: {error.type}: {error.message}", error)
        self.run_id = run_id


class WorkflowNotFound(DurablyError):
    """No workflow with this name is registered in this process."""


class RunNotFound(DurablyError):
    """No run with this id exists."""


class IdempotencyConflict(DurablyError):
    """A start reused the run id or idempotency key of a run that is not the one asked
    for: another workflow, other input, another parent, or a run id and an idempotency
    key of two different runs. Nothing is started."""

    def __init__(self, key: str, run_id: str, differs: list[str]) -> None:
        super().__init__(
            f"{key} belongs to run {run_id}, which has {' and '.join(differs)}: a start with "
            "the same id or key must ask for the same workflow with the same input"
        )
        self.key = key
        self.run_id = run_id
        self.differs = differs


class ScheduleError(DurablyError, ValueError):
    """A schedule cannot be made or changed as asked (a bad cron field, an unknown zone,
    no such schedule ...). Nothing is written."""


class ScheduleNotFound(ScheduleError):
    """No schedule with this id exists."""


class InvalidRunState(DurablyError):
    """The run is not in a state that allows the requested action."""


class NonDeterminismError(DurablyError):
    """Replayed workflow code called something other than what the journal recorded."""

    def __init__(
        self, run_id: str, position: int, recorded: str, current: str, call_site: str
    ) -> None:
        super().__init__(
            f"run {run_id}: non-deterministic workflow at journal position {position}: "
            f"the journal recorded {recorded}, but the code now calls {current} "
            f"at {call_site}. Restore the old code path (see durably.patched) or "
            f"fix the code and call engine.retry({run_id!r})."
        )
        self.run_id = run_id
        self.position = position
        self.recorded = recorded
        self.current = current
        self.call_site = call_site


class SerializationError(DurablyError):
    """A value could not be encoded or decoded, or is over the size limit."""


class NotInWorkflow(DurablyError):
    """A primitive that only makes sense inside a workflow run was called outside one."""


class LeaseLost(DurablyError):
    """This worker no longer holds the run's lease; another worker owns it now."""


class StoreError(DurablyError):
    """The database failed in a way durably could not retry (disk full, read-only, corrupt)."""


class StoreClosed(StoreError):
    """The engine (and its store) was closed; nothing more can be written through it."""

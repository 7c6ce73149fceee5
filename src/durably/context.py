"""The context of one executing run: journal cursor, replay and determinism.

A workflow is re-executed from the top when resumed. Each durable call takes
the next journal position at the moment it is *called* (so ``asyncio.gather``
of steps is deterministic) and is answered from the journal when that position
is recorded. A recorded position of another kind or name is a
:class:`NonDeterminismError`.

The logic of a durable call is written once, as a plan (see :mod:`durably.plans`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from durably import crashpoints
from durably.errors import (
    ErrorInfo,
    LeaseLost,
    NonDeterminismError,
    NotInWorkflow,
    SerializationError,
    StepFailed,
    WorkflowCancelled,
)
from durably.plans import Invoke, Plan, Sleep, Write, current_run, drive_async, drive_sync
from durably.records import Claim, EntryStatus, JournalEntry, RunStatus
from durably.retry import RESIDENT_DELAY
from durably.serialization import dumps, loads

if TYPE_CHECKING:
    from durably.committer import Committer
    from durably.registry import Step, Workflow
    from durably.stores.base import Store

T = TypeVar("T")

_JSON_SCALARS = frozenset({int, str, bool, type(None)})

_current: ContextVar[RunContext | None] = current_run
# The run on whose behalf code executes, step bodies included (where _current is None).
_owning: ContextVar[RunContext | None] = ContextVar("durably_owning_run", default=None)


def current() -> RunContext | None:
    """The workflow run executing in this thread or task, if any (None in step bodies)."""
    return _current.get()


def require(what: str) -> RunContext:
    """The current run, or :class:`NotInWorkflow` naming the primitive ``what``."""
    ctx = _current.get()
    if ctx is None:
        raise NotInWorkflow(f"{what}() can only be called inside a workflow run")
    return ctx


def owning() -> RunContext | None:
    """The run this code works for, inside step bodies too."""
    return _owning.get()


def _described(entry: JournalEntry) -> str:
    return f"{entry.kind} {entry.name!r} (called at {entry.call_site or 'unknown'})"


class Suspend(BaseException):
    """Unwinds a workflow that must wait: the run is released until ``available_at``.

    ``entries`` are journal entries written in the same transaction as the
    suspension. A BaseException so that a workflow's ``except Exception`` cannot
    swallow it.
    """

    def __init__(
        self, status: RunStatus, available_at: float | None, entries: tuple[JournalEntry, ...] = ()
    ) -> None:
        super().__init__(status.value)
        self.status = status
        self.available_at = available_at
        self.entries = entries


class ContinueAsNew(BaseException):
    """Ends the run; its successor starts with these arguments."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__("continue_as_new")
        self.call_args = args
        self.call_kwargs = kwargs


class Host(Protocol):
    """What a run needs from the executor that runs it."""

    owner: str
    lease: float
    #: Database clock minus this host's clock: timers are set on the database's clock.
    clock_offset: float

    @property
    def draining(self) -> bool: ...

    def has_room(self, queue: str = "default", workflow: str | None = None) -> bool: ...
    def dispatch(self, claim: Claim) -> None: ...


def call_site(depth: int = 3) -> str:
    """Where user code called into durably: ``file.py:line in function``.

    ``depth`` frames up is where a primitive's caller usually is; from there it
    walks further out of durably's own modules.
    """
    frame = sys._getframe(depth)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("durably."):
        frame = frame.f_back
    name = frame.f_code.co_filename.rsplit("/", 1)[-1]
    return f"{name}:{frame.f_lineno} in {frame.f_code.co_name}"


class RunContext:
    """State of one execution of one run."""

    def __init__(
        self,
        *,
        store: Store,
        committer: Committer,
        workflow: Workflow[Any, Any],
        claim: Claim,
        host: Host | None = None,
    ) -> None:
        self.store = store
        self.committer = committer
        self.host = host
        self.workflow = workflow
        self.run = claim.run
        self.lease = claim.lease
        self.run_id = claim.run.run_id
        self.is_async = workflow.is_async
        self.recorded = {entry.seq: entry for entry in claim.journal}
        self._last_recorded = max(self.recorded, default=-1)
        self.next_seq = 0
        self.fatal: NonDeterminismError | None = None
        self.lost = False  # another worker took the lease over
        self.broken = False  # the database failed one of its writes
        self.current_step: str | None = None  # published by the heartbeat, not per step
        self.step_since = 0.0
        self.cancel_requested = claim.run.cancel_requested
        # A cancelled run's error holds the reason until the run ends.
        self.cancel_reason = claim.run.error.message if claim.run.error else ""
        self.shielded = 0
        #: Entries that need no write of their own: they go with the next write.
        self.pending: list[JournalEntry] = []
        #: Set by durably.gather: step calls are collected as plans instead of run.
        self.deferred: list[Plan[Any]] | None = None
        self.compensations: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    # -- positions ---------------------------------------------------------------
    def allocate(self, kind: str, name: str) -> tuple[int, JournalEntry | None, str]:
        """Take the next journal position; check it against what was recorded there."""
        seq = self.next_seq
        self.next_seq += 1
        site = call_site()
        entry = self.recorded.get(seq)
        if entry is not None and (entry.kind != kind or entry.name != name):
            self.fatal = NonDeterminismError(
                self.run_id,
                seq,
                _described(entry),
                f"{kind} {name!r}",
                site,
            )
            raise self.fatal
        return seq, entry, site

    def check_finished(self) -> None:
        """A completed workflow must have replayed every recorded position."""
        missing = [seq for seq in self.recorded if seq >= self.next_seq]
        if missing and self.fatal is None:
            entry = self.recorded[min(missing)]
            self.fatal = NonDeterminismError(
                self.run_id,
                entry.seq,
                _described(entry),
                "nothing (the workflow returned before reaching it)",
                f"the end of {self.workflow.name}",
            )

    def now(self) -> float:
        """The database's time (this host's clock corrected by the executor's offset)."""
        return time.time() + (self.host.clock_offset if self.host is not None else 0.0)

    @property
    def replaying(self) -> bool:
        """True while positions recorded by an earlier execution lie ahead."""
        return self.next_seq <= self._last_recorded

    def gate(self) -> None:
        """Before a durable call that is not replayed: deliver a cancel, or yield to a drain.

        A draining worker releases the run here (runnable at once), so a peer
        continues it from this checkpoint.
        """
        if self.host is not None and self.host.draining and not self.shielded:
            raise Suspend(RunStatus.PENDING, self.now())
        if self.cancel_requested and not self.shielded:
            reason = f": {self.cancel_reason}" if self.cancel_reason else ""
            raise WorkflowCancelled(f"run {self.run_id} was cancelled{reason}")

    def fenced(self, write: Callable[[Any], T]) -> Write:
        """A write for this run, with pending entries first; marks the run lost if fenced out."""
        pending, self.pending = self.pending, []

        def op(tx: Any) -> T:
            try:
                for entry in pending:
                    self.store.append_entry(tx, self.lease, entry)
                return write(tx)
            except LeaseLost:
                self.lost = True  # the workflow may swallow the error; the executor won't
                raise

        return Write(op, self._store_failed)

    def _store_failed(self) -> None:
        # Not the workflow's failure: this execution is abandoned and the run released,
        # to be replayed once the database accepts writes again.
        self.broken = True

    def write_entry(self, entry: JournalEntry) -> Write:
        return self.fenced(lambda tx: self.store.append_entry(tx, self.lease, entry))

    # -- steps -------------------------------------------------------------------
    def call_step(self, step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if step.is_async and not self.is_async:
            raise TypeError(
                f"async step {step.name!r} called from sync workflow {self.workflow.name!r}; "
                "make the workflow async or the step sync"
            )
        plan = self.step_plan(step, args, kwargs)
        if self.deferred is not None:
            self.deferred.append(plan)
            return plan  # gather checks that the call returned exactly this
        if step.is_async:
            return drive_async(self.committer, plan)
        return drive_sync(self.committer, plan)

    def step_plan(
        self, step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Plan[Any]:
        """Take the step's journal position now; the returned plan runs or replays it."""
        seq, entry, site = self.allocate("step", step.name)
        return self._step_plan(step, args, kwargs, seq, entry, site)

    def _step_plan(
        self,
        step: Step[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        seq: int,
        entry: JournalEntry | None,
        site: str,
    ) -> Plan[Any]:
        what = f"result of step {step.name!r} in run {self.run_id}"
        if entry is not None and entry.status is EntryStatus.COMPLETED:
            return loads(entry.output, step.result_hint, what=what)
        if entry is not None and entry.status is EntryStatus.FAILED:
            assert entry.error is not None
            raise StepFailed(step.name, entry.error, entry.attempts)
        self.gate()
        attempt = entry.attempts if entry is not None else 0
        started = entry.started_at if entry is not None and entry.started_at else time.time()
        while True:
            attempt += 1
            self.current_step, self.step_since = step.name, time.monotonic()
            crashpoints.hit("step.before_body")
            try:
                result = yield Invoke(step.fn, args, kwargs, step.timeout, step.name, step.is_async)
                crashpoints.hit("step.after_body")
                text = dumps(result, what=what)
            except SerializationError as exc:
                yield from self._fail_step(step, seq, site, started, attempt, exc)
            except Exception as exc:
                delay = step.policy.next_delay(attempt, exc)
                if delay is None:
                    yield from self._fail_step(step, seq, site, started, attempt, exc)
                elif delay > RESIDENT_DELAY:  # free the worker; the claim path brings it back
                    error = ErrorInfo.from_exception(exc)
                    retrying = JournalEntry(
                        seq,
                        "step",
                        step.name,
                        EntryStatus.RETRYING,
                        None,
                        error,
                        attempt,
                        started,
                        None,
                        site,
                    )
                    raise Suspend(RunStatus.PENDING, self.now() + delay, (retrying,)) from exc
                else:
                    yield Sleep(delay)  # a short backoff stays resident
                continue
            finally:
                self.current_step = None
            yield self.write_entry(
                JournalEntry(
                    seq,
                    "step",
                    step.name,
                    EntryStatus.COMPLETED,
                    text,
                    None,
                    attempt,
                    started,
                    time.time(),
                    site,
                )
            )
            crashpoints.hit("step.after_checkpoint")
            # Return what replay would return, so first run and replay agree.
            hint = step.result_hint
            if type(result) in _JSON_SCALARS and (hint is Any or hint is type(result)):
                return result  # decoding its JSON would give back the same value
            return loads(text, hint, what=what)

    def _fail_step(
        self,
        step: Step[Any, Any],
        seq: int,
        site: str,
        started: float,
        attempt: int,
        exc: Exception,
    ) -> Plan[None]:
        error = ErrorInfo.from_exception(exc)
        yield self.write_entry(
            JournalEntry(
                seq,
                "step",
                step.name,
                EntryStatus.FAILED,
                None,
                error,
                attempt,
                started,
                time.time(),
                site,
            )
        )
        raise StepFailed(step.name, error, attempt) from exc


def activate(ctx: RunContext | None) -> Any:
    """Make ``ctx`` the current run; returns a token for :func:`deactivate`."""
    return _current.set(ctx), _owning.set(ctx)


def deactivate(token: Any) -> None:
    _current.reset(token[0])
    _owning.reset(token[1])

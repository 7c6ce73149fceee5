"""The context of one executing run: journal cursor, replay and determinism.

A workflow is re-executed from the top when resumed. Each durable call takes
the next journal position at the moment it is *called* (so ``asyncio.gather``
of steps is deterministic) and is answered from the journal when that position
is recorded. A recorded position of another kind or name is a
:class:`NonDeterminismError`.

The logic of a durable call is written once, as a plan (see
:mod:`durably.runtime.effects`); steps' is in :mod:`durably.runtime.steps`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from durably import current as running
from durably.clock import Clock
from durably.committer import Committer
from durably.errors import (
    ErrorInfo,
    LeaseLost,
    NonDeterminismError,
    NotInWorkflow,
    WorkflowCancelled,
    WorkflowTimedOut,
)
from durably.hooks import Hooks, RunClaimed
from durably.records import Claim, EntryStatus, JournalEntry, RunStatus
from durably.registry import Step, Workflow
from durably.runtime import steps
from durably.runtime.effects import Plan, Write, drive_async, drive_sync
from durably.runtime.unwinding import Suspend
from durably.stores.base import Store, Transaction

T = TypeVar("T")


def current() -> RunContext | None:
    """The workflow run executing in this thread or task, if any (None in step bodies)."""
    ctx: RunContext | None = running.workflow_run.get()
    return ctx


def require(what: str) -> RunContext:
    """The current run, or :class:`NotInWorkflow` naming the primitive ``what``."""
    ctx: RunContext | None = running.workflow_run.get()
    if ctx is None:
        raise NotInWorkflow(f"{what}() can only be called inside a workflow run")
    return ctx


def owning() -> RunContext | None:
    """The run this code works for, inside step bodies too."""
    ctx: RunContext | None = running.owning_run.get()
    return ctx


def _described(entry: JournalEntry) -> str:
    return f"{entry.kind} {entry.name!r} (called at {entry.call_site or 'unknown'})"


class Host(Protocol):
    """What a run needs from the executor that runs it."""

    owner: str
    lease: float
    #: Steps whose body is replaced, by name (``engine.mock_step``).
    mocks: dict[str, Step[Any, Any]]

    @property
    def draining(self) -> bool: ...

    def now(self) -> float:
        """The store's time: timers are set on it."""
        ...

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
        hooks: Hooks,
        clock: Clock,
        max_payload: int,
        host: Host | None = None,
    ) -> None:
        self.store = store
        self.committer = committer
        self.hooks = hooks
        self.clock = clock
        self.max_payload = max_payload
        self.host = host
        self.mocks: dict[str, Step[Any, Any]] = host.mocks if host is not None else {}
        self.workflow = workflow
        self.workflow_name = workflow.name
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
        #: The claim as the hooks saw it (set by the executor when someone listens).
        self.claimed: RunClaimed | None = None
        self.current_step: str | None = None  # published by the heartbeat, not per step
        self.step_since = 0.0
        self.cancel_requested = claim.run.cancel_requested
        # A cancelled run's error holds the reason until the run ends.
        self.cancel_reason = claim.run.error.message if claim.run.error else ""
        self.cancel_seen = False  # WorkflowCancelled raised in this execution
        self.shielded = 0
        #: Entries that need no write of their own: they go with the next write.
        self.pending: list[JournalEntry] = []
        #: History events (kind, details, store time) that go with the next write too.
        self.notes: list[tuple[str, dict[str, Any], float]] = []
        #: Set by durably.gather: step calls are collected as plans instead of run.
        self.deferred: list[Plan[Any]] | None = None
        self.compensations: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        #: The call site recorded for positions taken now, when it is not the caller's.
        self.site: str | None = None
        #: The store time past which the run is cancelled (the workflow's timeout).
        self.deadline = (
            None if workflow.timeout is None else claim.run.created_at + workflow.timeout
        )

    # -- positions ---------------------------------------------------------------
    def allocate(self, kind: str, name: str) -> tuple[int, JournalEntry | None, str]:
        """Take the next journal position; check it against what was recorded there."""
        seq = self.next_seq
        self.next_seq += 1
        site = self.site or call_site()
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
        """The store's time (this host's clock corrected by the measured offset)."""
        return self.host.now() if self.host is not None else self.clock.time()

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
            raise self.cancelled()
        if self.deadline is not None and not self.shielded and self.now() >= self.deadline:
            raise WorkflowTimedOut(
                f"run {self.run_id} ran past the {self.workflow.timeout:g}s timeout of "
                f"workflow {self.workflow_name!r}"
            )

    def cancelled(self) -> WorkflowCancelled:
        """The error that tells the workflow it was asked to cancel (it has seen one now)."""
        self.cancel_seen = True
        reason = f": {self.cancel_reason}" if self.cancel_reason else ""
        return WorkflowCancelled(f"run {self.run_id} was cancelled{reason}")

    def check_unseen_cancel(self) -> None:
        """At the workflow's return: a cancel asked while its last step ran, that it never
        saw (no durable call came after), ends the run cancelled, not completed."""
        if self.cancel_requested and not self.cancel_seen and not self.shielded:
            raise self.cancelled()

    def fenced(self, write: Callable[[Transaction], T]) -> Write:
        """A write for this run, with pending entries and notes first; marks the run lost
        if fenced out."""
        pending, self.pending = self.pending, []
        notes = self.notes
        if notes:
            self.notes = []

        def op(tx: Transaction) -> T:
            try:
                for entry in pending:
                    self.store.append_entry(tx, self.lease, entry)
                for kind, detail, at in notes:
                    self.store.add_history(tx, self.run_id, kind, detail, at)
                return write(tx)
            except LeaseLost:
                self.lost = True  # the workflow may swallow the error; the executor won't
                raise

        return Write(op, self._store_failed)

    def _store_failed(self) -> None:
        # Not the workflow's failure: this execution is abandoned and the run released,
        # to be replayed once the database accepts writes again.
        self.broken = True

    def entry(
        self,
        seq: int,
        kind: str,
        name: str,
        site: str,
        output: str | None,
        status: EntryStatus = EntryStatus.COMPLETED,
        error: ErrorInfo | None = None,
    ) -> JournalEntry:
        """A journal entry for a primitive (one attempt, started and finished now)."""
        return JournalEntry.record(
            seq, kind, name, site, output, status, error, at=self.clock.time()
        )

    def note(self, kind: str, detail: dict[str, Any]) -> None:
        """Record an event of the run's life with its next write (see ``engine.history``)."""
        self.notes.append((kind, detail, self.now()))

    def write_entry(self, entry: JournalEntry) -> Write:
        return self.fenced(lambda tx: self.store.append_entry(tx, self.lease, entry))

    def blocking(self, what: str, twin: str) -> None:
        """Refuse a blocking call in an async workflow: it would stall the event loop
        every async run shares."""
        if self.is_async:
            raise TypeError(
                f"{what} blocks, and async workflow {self.workflow.name!r} shares its event "
                f"loop with every async run: use {twin} instead"
            )

    # -- steps -------------------------------------------------------------------
    def call_step(self, step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if step.is_async and not self.is_async:
            raise TypeError(
                f"async step {step.name!r} called from sync workflow {self.workflow.name!r}; "
                "make the workflow async or the step sync"
            )
        if not step.is_async and self.is_async and self.deferred is None:
            self.blocking(f"sync step {step.name!r}", "an async step (or a sync workflow)")
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
        return steps.step_plan(self, step, args, kwargs, seq, entry, site)


def activate(ctx: RunContext | None) -> Any:
    """Make ``ctx`` the current run; returns a token for :func:`deactivate`."""
    return running.workflow_run.set(ctx), running.owning_run.set(ctx)


def deactivate(token: Any) -> None:
    running.workflow_run.reset(token[0])
    running.owning_run.reset(token[1])

"""Immutable records that cross the store boundary: runs, journal entries, claims."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from durably.errors import ErrorInfo, IdempotencyConflict
from durably.serialization import loads


class RunStatus(StrEnum):
    """The life cycle of a run: ``pending → running → (sleeping | waiting) → … → terminal``."""

    PENDING = "pending"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class EntryStatus(StrEnum):
    """The state of one journal position."""

    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"  # attempts so far are recorded; the step is due again
    WAITING = "waiting"  # a wait (signal, child) began; its deadline is recorded


def new_run_id() -> str:
    """A random id that sorts by creation time (like UUIDv7), so inserts append."""
    # Unique, not secret: the random module (reseeded in forked children) spares a
    # system call per id.
    return f"{time.time_ns() // 1_000_000:012x}{random.getrandbits(80):020x}"


def timestamp(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One recorded position of a run's journal.

    ``output`` and ``error`` are the raw JSON text and error as stored; public
    accessors decode them.
    """

    seq: int
    kind: str
    name: str
    status: EntryStatus
    output: str | None
    error: ErrorInfo | None
    attempts: int
    started_at: float | None
    finished_at: float | None
    call_site: str = ""

    @classmethod
    def record(
        cls,
        seq: int,
        kind: str,
        name: str,
        site: str,
        output: str | None,
        status: EntryStatus = EntryStatus.COMPLETED,
        error: ErrorInfo | None = None,
        *,
        at: float,
    ) -> JournalEntry:
        """An entry for a primitive (one attempt, started and finished ``at``)."""
        return cls(seq, kind, name, status, output, error, 1, at, at, site)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A journal entry as users see it (``engine.steps(run_id)``)."""

    seq: int
    kind: str
    name: str
    status: str
    attempts: int
    output: Any
    error: ErrorInfo | None
    started_at: datetime | None
    finished_at: datetime | None
    call_site: str

    @classmethod
    def from_entry(cls, entry: JournalEntry) -> StepRecord:
        return cls(
            seq=entry.seq,
            kind=entry.kind,
            name=entry.name,
            status=entry.status.value,
            attempts=entry.attempts,
            output=loads(entry.output, what=f"output of journal entry {entry.seq}"),
            error=entry.error,
            started_at=timestamp(entry.started_at),
            finished_at=timestamp(entry.finished_at),
            call_site=entry.call_site,
        )


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What code inside a run knows of it (``durably.current_run()``).

    In workflow code the step fields are ``None``; in a step's body they name the
    step, its journal position and its attempt (1 for the first).
    """

    run_id: str
    workflow: str
    parent_id: str | None
    attempt: int  # executions of the run so far, this one included
    step: str | None = None
    position: int | None = None
    step_attempt: int | None = None
    #: What the previous attempt of this step passed to ``durably.heartbeat()``
    #: (kept in this process only: an attempt resumed elsewhere starts with None).
    heartbeat_details: Any = None


@dataclass(frozen=True, slots=True)
class RunRow:
    """A row of the ``runs`` table, as the store returns it."""

    run_id: str
    workflow: str
    status: RunStatus
    input: str
    output: str | None
    error: ErrorInfo | None
    current_step: str | None
    queue: str
    priority: int
    idempotency_key: str | None
    parent_id: str | None
    attempts: int
    epoch: int
    owner: str | None
    created_at: float
    updated_at: float
    cancel_requested: bool = False
    continued_to: str | None = None
    partition_key: str | None = None
    available_at: float | None = None  # store time it may run from (None: until woken)
    #: Times in a row it was taken back from a worker that died executing it, no progress.
    recoveries: int = 0
    lease_until: float | None = None  # store time the owner's lease runs out
    #: What a hook gave to store with the run when it started (a trace context).
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class Run:
    """A snapshot of a run, as ``engine.get_run`` returns it.

    ``input`` is ``{"args": [...], "kwargs": {...}}`` and ``output`` the decoded
    JSON result, both as plain JSON values.
    """

    run_id: str
    workflow: str
    status: RunStatus
    current_step: str | None
    input: Any
    output: Any
    error: ErrorInfo | None
    attempts: int
    parent_id: str | None
    queue: str
    priority: int
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    continued_to: str | None = None
    #: Why a run that is due waits all the same (no live worker executes its workflow or
    #: serves its queue); ``None`` when nothing is amiss.
    blocked_reason: str | None = None
    #: The worker holding its lease now, the lease's epoch, and when it runs out.
    owner: str | None = None
    epoch: int = 0
    lease_until: datetime | None = None
    #: When it may run next (a timer, a backoff, a delayed start); ``None``: when woken.
    available_at: datetime | None = None

    @classmethod
    def from_row(
        cls, row: RunRow, current_step: str | None = None, blocked_reason: str | None = None
    ) -> Run:
        """The public snapshot of a stored run (``current_step`` if known closer at hand)."""
        return cls(
            run_id=row.run_id,
            workflow=row.workflow,
            status=row.status,
            current_step=current_step or row.current_step,
            input=loads(row.input, what=f"input of run {row.run_id}"),
            output=loads(row.output, what=f"output of run {row.run_id}"),
            error=row.error,
            attempts=row.attempts,
            parent_id=row.parent_id,
            queue=row.queue,
            priority=row.priority,
            idempotency_key=row.idempotency_key,
            created_at=datetime.fromtimestamp(row.created_at, UTC),
            updated_at=datetime.fromtimestamp(row.updated_at, UTC),
            continued_to=row.continued_to,
            blocked_reason=blocked_reason,
            owner=row.owner,
            epoch=row.epoch,
            lease_until=timestamp(row.lease_until) if row.owner else None,
            available_at=timestamp(row.available_at),
        )


@dataclass(frozen=True, slots=True)
class NewRun:
    """What ``start_workflow`` asks the store to create."""

    run_id: str
    workflow: str
    input: str
    idempotency_key: str | None = None
    queue: str = "default"
    priority: int = 0
    delay: float = 0.0
    parent_id: str | None = None
    partition_key: str | None = None
    owner: str | None = None  # set when the starting process claims the run at once
    lease: float = 0.0  # the claim's lease length, with owner
    #: The tree it belongs to (a continue-as-new successor keeps its chain's); None:
    #: its parent's, or its own when it has no parent.
    root_id: str | None = None
    trace: str | None = None  # what a hook gave to store with it (a trace context)

    def check_same(self, existing: RunRow, *, id_given: bool = True) -> None:
        """Raise :class:`IdempotencyConflict` unless ``existing`` (the run this start's id
        or key found) is the run it asks for: same workflow, same input, same parent, and
        the key and the id (``id_given``: the caller chose it) both of that run."""
        differs = []
        key = self.idempotency_key
        if key is not None and existing.idempotency_key != key:  # found by its id
            has = existing.idempotency_key
            what = "no idempotency key" if has is None else f"key {has!r}"
            differs.append(f"{what}, not {key!r}")
        elif id_given and existing.run_id != self.run_id:  # found by its key
            differs.append(f"another id than {self.run_id!r}")
        if existing.workflow != self.workflow:
            differs.append(f"workflow {existing.workflow!r}, not {self.workflow!r}")
        elif loads(existing.input, what="a run's input") != loads(self.input, what="the input"):
            differs.append("other input")
        if existing.parent_id != self.parent_id:
            differs.append(f"parent {existing.parent_id!r}, not {self.parent_id!r}")
        if differs:
            by_key = self.idempotency_key is not None and existing.run_id != self.run_id
            key = (
                f"idempotency key {self.idempotency_key!r}" if by_key else f"run id {self.run_id!r}"
            )
            raise IdempotencyConflict(key, existing.run_id, differs)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live executor, as it announces itself in the store."""

    worker_id: str  # its lease owner id: host:pid:random
    host: str
    pid: int
    queues: tuple[str, ...] | None  # None: every queue
    workflows: tuple[str, ...]  # the workflows it executes
    lease: float
    started_at: float
    seen_at: float
    concurrency: int = 0  # threads for sync workflows
    patterns: tuple[str, ...] | None = None  # the workflow name patterns it was given
    #: Per workflow it executes, its version (``@workflow(version=...)`` or its code's).
    versions: Mapping[str, str] = field(default_factory=dict)

    def executes(self, workflow: str, queue: str) -> bool:
        return workflow in self.workflows and (self.queues is None or queue in self.queues)


def why_waiting(run: RunRow, workers: list[WorkerInfo]) -> str | None:
    """Why a due run held by nobody waits, given the live workers; ``None`` if one can run it."""
    if not workers:
        return (
            "no worker is running: launch an engine that executes it (`with engine:`) "
            "or start one (`durably worker --app module:engine`)"
        )
    if any(w.executes(run.workflow, run.queue) for w in workers):
        return None
    if not any(run.workflow in w.workflows for w in workers):
        return (
            f"no live worker executes workflow {run.workflow!r} (the {len(workers)} live "
            "worker(s) do not import it)"
        )
    return f"no live worker that executes {run.workflow!r} serves queue {run.queue!r}"


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof of ownership: every write for a run is conditional on it (fencing)."""

    run_id: str
    owner: str
    epoch: int


@dataclass(frozen=True, slots=True)
class DueRun:
    """A run a worker may claim now: what a transport's sweeper wakes."""

    run_id: str
    workflow: str
    queue: str
    priority: int
    available_at: float


@dataclass(frozen=True, slots=True)
class Claim:
    """A run this worker now owns, with its whole journal (loaded in one query)."""

    run: RunRow
    journal: tuple[JournalEntry, ...]
    #: The worker it was taken back from (one that died, or whose lease ran out).
    recovered_from: str | None = None
    #: Created by this process already claimed (a start, a child, a continuation).
    started_here: bool = False

    @property
    def lease(self) -> Lease:
        assert self.run.owner is not None
        return Lease(self.run.run_id, self.run.owner, self.run.epoch)


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a listing, a count or a bulk action is about (all of them by default).

    ``workflows`` are name patterns (``"billing.*"``, as in :mod:`fnmatch`); a run
    matches when its workflow matches one. ``since``/``until`` bound its creation
    time (store time, seconds since the epoch; ``until`` excluded).
    """

    workflows: tuple[str, ...] = ()
    statuses: tuple[RunStatus, ...] = ()
    queue: str | None = None
    since: float | None = None
    until: float | None = None
    parent_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One moment of a run's life (``engine.history``): what happened, when, details."""

    at: datetime
    kind: str
    detail: dict[str, Any]

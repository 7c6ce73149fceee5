"""The Store protocol: the only door to the database.

A store offers a few domain operations. Write operations take the transaction
handle ``tx`` given by :meth:`Store.transact`; the caller (the group-commit
writer) may run many of them in one transaction, so each one is atomic with
the others in the batch and with its own checks. Policy (retry, replay,
scheduling) lives above this line and is written once.

Fencing: every write for a running run names a :class:`~durably.records.Lease`.
It succeeds only while the run's ``epoch`` still equals the lease's and the row
is owned by the lease's owner (or released by it); otherwise it changes nothing
and raises :class:`~durably.errors.LeaseLost`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from durably.errors import ErrorInfo
from durably.queues import Queue
from durably.records import Claim, JournalEntry, Lease, NewRun, RunRow, RunStatus

T = TypeVar("T")


class Store(Protocol):
    """Durable state of runs, journals and workers."""

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        ...

    def transact(self, work: Callable[[Any], T]) -> T:
        """Run ``work(tx)`` in one transaction and commit it.

        Transient failures (a busy database, a dropped connection) roll back and
        run ``work`` again, so ``work`` must be repeatable. Permanent failures
        raise :class:`~durably.errors.StoreError`.
        """
        ...

    # -- writes (inside transact) ------------------------------------------
    def create_run(self, tx: Any, new: NewRun) -> tuple[RunRow, bool]:
        """Insert a run unless its id or idempotency key exists; return (row, created).

        With ``new.owner`` set the run is created already claimed by that owner
        (epoch 1, status running): the in-process fast path.
        """
        ...

    def claim_runs(
        self,
        tx: Any,
        owner: str,
        limit: int,
        lease: float,
        workflows: Sequence[str],
        queues: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        limits: Queue | None = None,
    ) -> list[Claim]:
        """Lease up to ``limit`` runnable runs of these workflows; load their journals.

        Runnable: not terminal, ``available_at <= now``, no live lease; highest
        priority first. Only queues in ``queues`` (all if None) and not in
        ``exclude``. With ``limits`` (one queue), claimers of that queue are
        serialized for the transaction and its limits hold exactly. Each claim
        increments ``epoch`` and sets the run running.
        """
        ...

    def append_entry(self, tx: Any, lease: Lease, entry: JournalEntry) -> None:
        """Write (or overwrite) one journal position; fenced."""
        ...

    def set_progress(self, tx: Any, lease: Lease, current_step: str | None) -> None:
        """Publish the step a run is executing now; fenced, best effort."""
        ...

    def suspend_run(
        self, tx: Any, lease: Lease, status: RunStatus, available_at: float | None
    ) -> None:
        """Release the run until ``available_at`` (``None``: until woken); fenced."""
        ...

    def finish_run(
        self,
        tx: Any,
        lease: Lease,
        status: RunStatus,
        output: str | None,
        error: ErrorInfo | None,
        continued_to: str | None = None,
        parent_id: str | None = None,
    ) -> None:
        """End the run with its output or error, release it, wake ``parent_id``; fenced."""
        ...

    def continue_run(self, tx: Any, lease: Lease, successor: NewRun) -> tuple[RunRow, bool]:
        """End the run as completed, linked to ``successor``, and create it; fenced."""
        ...

    def start_child(
        self, tx: Any, lease: Lease, entry: JournalEntry, child: NewRun
    ) -> tuple[RunRow, bool]:
        """Journal a child's start and create the child (idempotent by its id); fenced."""
        ...

    def last_link(self, tx: Any, run_id: str) -> RunRow | None:
        """The run, or the last of its continue-as-new chain, read inside the transaction."""
        ...

    def send_signal(self, tx: Any, run_id: str, name: str, payload: str, key: str) -> None:
        """Queue a signal for a run not ended and wake it if it waits; one per ``key``.

        Raises RunNotFound, or InvalidRunState for an ended run.
        """
        ...

    def take_signal(self, tx: Any, lease: Lease, entry: JournalEntry) -> str | None:
        """Receive the oldest pending signal ``entry.name`` into the journal; fenced.

        Returns its payload or ``None`` when none is pending (nothing written).
        """
        ...

    def set_event(self, tx: Any, lease: Lease, entry: JournalEntry, value: str) -> None:
        """Journal and publish an event value; fenced."""
        ...

    def cancel_run(self, tx: Any, run_id: str, reason: str) -> bool:
        """Ask a run and its descendants to cancel, waking the parked ones.

        False if it was already cancelled; InvalidRunState if it completed or failed.
        """
        ...

    def retry_run(self, tx: Any, run_id: str) -> None:
        """Make a failed run runnable again, dropping its trailing failed entry.

        Raises RunNotFound or InvalidRunState when the run is not failed.
        """
        ...

    # -- leases (each its own transaction) ----------------------------------
    def renew_leases(self, owner: str, lease: float, run_ids: Sequence[str]) -> int:
        """Extend the leases ``owner`` holds on these runs, in one statement; return how many."""
        ...

    def release_owner(self, owner: str) -> int:
        """Take back every lease of a dead ``owner`` (bumping epochs) so peers resume at once."""
        ...

    def release_run(self, lease: Lease) -> None:
        """Give up one run (bumping its epoch) so any worker resumes it; fenced, no error."""
        ...

    def clock(self) -> float:
        """The database's clock (leases and timers are set on it), seconds since the epoch."""
        ...

    def lease_owners(self) -> list[str]:
        """Distinct owners currently holding leases."""
        ...

    def cancel_requests(self, owner: str) -> list[str]:
        """Runs held by ``owner`` that were asked to cancel."""
        ...

    # -- reads -----------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRow | None: ...

    def list_runs(
        self, workflow: str | None, status: RunStatus | None, limit: int
    ) -> list[RunRow]: ...

    def journal(self, run_id: str) -> list[JournalEntry]: ...

    def get_event(self, run_id: str, key: str) -> tuple[bool, str | None]:
        """Whether the event is set, and its value."""
        ...

    def next_wakeup(self, workflows: Sequence[str]) -> float | None:
        """The earliest ``available_at`` among unleased runs of these workflows."""
        ...

    def listen(
        self, on_ready: Callable[[], None], on_done: Callable[[str], None]
    ) -> Callable[[], None]:
        """Call back when runs become runnable or finish, in any process; returns a stopper.

        A store without notifications returns at once (callers poll instead).
        """
        ...

    def close(self) -> None: ...

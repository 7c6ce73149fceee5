"""The Store protocol: the only door to the database.

A store offers a small number of domain operations on runs, their journals,
their messages and the workers' leases. Policy (retry, replay, timers,
scheduling, composite operations such as starting a child) lives above this
line and is written once; a backend only answers these operations.

Transactions. Writes take the :class:`Transaction` that :meth:`Store.transact`
hands to its work. The group-commit writer runs up to :attr:`Store.max_batch`
operations of different runs in one transaction, so each operation is atomic
with its own checks and with the others of its batch. An operation that raises
a :class:`~durably.errors.DurablyError` (``LeaseLost``, ``RunNotFound`` ...)
must leave nothing behind once the writer rolls the transaction back; the
writer then commits the rest of the batch again without it.

Fencing. Every write for a running run names a :class:`~durably.records.Lease`.
It succeeds only while the run's ``epoch`` still equals the lease's, the run is
owned by the lease's owner (or by nobody, after that owner released it) and the
run has not ended; otherwise it changes nothing and raises ``LeaseLost``.

Time. The store decides due timers and live leases by its own "now": the
engine's :attr:`Store.clock` where the database has no clock of its own
(SQLite), the database's clock where several hosts share it (PostgreSQL).

Nothing here is SQL-shaped: a key-value store with conditional writes and small
transactions (DynamoDB's ``TransactWriteItems`` takes 100 items) implements it
with ``max_batch`` set to what one of its transactions holds.

How it grows. By concern rather than as one list (:mod:`durably.stores.protocols`):
:class:`AdminStore` (the paged, filtered queries of the CLI and dashboard, history,
forks, purges) is its own protocol, and so are :class:`ScheduleStore` (schedules and
their fired ticks, written in the same transaction as the runs they start) and
:class:`VirtualClockStore` (what a test's virtual clock needs); when the heartbeat's
part grows, a ``LeaseStore`` (renewals, releases, workers) will be one. A backend
implements all of them; :class:`Store` is their union.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from durably.clock import Clock
from durably.errors import ErrorInfo
from durably.queues import Queue
from durably.records import (
    Claim,
    DueRun,
    JournalEntry,
    Lease,
    NewRun,
    RunRow,
    RunStatus,
    WorkerInfo,
)
from durably.stores.protocols import AdminStore, ScheduleStore, Transaction, VirtualClockStore

T = TypeVar("T")
__all__ = ["AdminStore", "ScheduleStore", "Store", "Transaction", "VirtualClockStore", "redact"]


class Store(AdminStore, ScheduleStore, VirtualClockStore, Protocol):
    """Durable state of runs, journals, messages and leases (and, from
    :class:`AdminStore`, what operators ask)."""

    #: The clock the engine and this store share (see the module's docstring).
    clock: Clock
    #: True when a commit takes microseconds (an embedded database): the engine's
    #: event loop then commits its coroutines' writes itself instead of handing
    #: them to a thread.
    commits_on_loop: bool
    #: The most operations the group-commit writer puts in one transaction.
    max_batch: int

    def transact(self, work: Callable[[Transaction], T]) -> T:
        """Run ``work(tx)`` in one transaction and commit it; return what it returned.

        Transient failures (a busy database, a dropped connection) roll back and
        run ``work`` again, so ``work`` must be repeatable. Permanent failures
        raise :class:`~durably.errors.StoreError` (``StoreClosed`` once closed).
        """
        ...

    # -- writes (inside transact) ------------------------------------------
    def create_run(self, tx: Transaction, new: NewRun) -> tuple[RunRow, bool]:
        """Insert a run unless its id or idempotency key exists; return (row, created).

        An existing run found by the key wins over one found by the id. With
        ``new.owner`` set the run is created already claimed by that owner
        (epoch 1, status running): the in-process fast path.
        """
        ...

    def create_runs(self, tx: Transaction, news: Sequence[NewRun]) -> None:
        """Insert these pending runs with no parent and no owner (a schedule's ticks),
        skipping ids that exist: a few statements however many runs."""
        ...

    def claim_runs(
        self,
        tx: Transaction,
        owner: str,
        limit: int,
        lease: float,
        workflows: Sequence[str],
        queues: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        limits: Queue | None = None,
    ) -> list[Claim]:
        """Lease up to ``limit`` runnable runs of these workflows, with their journals.

        Runnable: not terminal, ``available_at <= now``, no live lease; highest
        priority first, then the earliest due. Only queues in ``queues`` (all if
        None) and not in ``exclude``. With ``limits`` (one queue), claimers of that
        queue are serialized for the transaction and the queue's concurrency, rate
        and per-partition limits hold exactly. Each claim increments ``epoch``,
        counts an attempt and sets the run running.
        """
        ...

    def append_entry(self, tx: Transaction, lease: Lease, entry: JournalEntry) -> None:
        """Write (or overwrite) one journal position; fenced."""
        ...

    def set_progress(self, tx: Transaction, lease: Lease, current_step: str | None) -> None:
        """Publish the step a running run is in now; fenced (a run no longer running
        raises ``LeaseLost`` and is left alone)."""
        ...

    def suspend_run(
        self, tx: Transaction, lease: Lease, status: RunStatus, available_at: float | None
    ) -> None:
        """Release the run until ``available_at`` (``None``: until woken); fenced.

        A cancel requested meanwhile, or a wake-up (signal, child) that came while
        a ``waiting`` run executed, makes it runnable at once instead.
        """
        ...

    def finish_run(
        self,
        tx: Transaction,
        lease: Lease,
        status: RunStatus,
        output: str | None,
        error: ErrorInfo | None,
        continued_to: str | None = None,
        parent_id: str | None = None,
    ) -> None:
        """End the run with its output or error and release it; fenced.

        ``continued_to`` links it to its continue-as-new successor. Otherwise a
        ``parent_id`` waiting for it is woken.
        """
        ...

    def last_links(self, tx: Transaction, run_ids: Sequence[str]) -> dict[str, RunRow]:
        """For each of these runs that exists, by its id: the run, or the last run of its
        continue-as-new chain, read inside ``tx`` (so the check and the writes that
        follow it commit together)."""
        ...

    def send_signal(self, tx: Transaction, run_id: str, name: str, payload: str, key: str) -> None:
        """Queue a signal for a run not ended and wake it if it waits; one per ``key``.

        Raises ``RunNotFound``, or ``InvalidRunState`` for an ended run.
        """
        ...

    def take_signal(self, tx: Transaction, lease: Lease, entry: JournalEntry) -> str | None:
        """Receive the oldest pending signal named ``entry.name`` into the journal; fenced.

        Returns its payload, or ``None`` (and writes nothing) when none is pending.
        A signal this position consumed already is returned again, so a retried
        transaction receives the same one: each signal is received exactly once.
        """
        ...

    def set_event(self, tx: Transaction, lease: Lease, entry: JournalEntry, value: str) -> None:
        """Journal ``entry`` and publish ``value`` under ``entry.name``; fenced."""
        ...

    def cancel_run(self, tx: Transaction, run_id: str, reason: str) -> bool:
        """Ask a run and its descendants to cancel, waking the parked ones.

        False if it was already cancelled; ``RunNotFound``; ``InvalidRunState`` if
        it completed or failed.
        """
        ...

    def retry_run(self, tx: Transaction, run_id: str, drop: Sequence[int]) -> None:
        """Make a failed run runnable again, dropping the failed journal entries at the
        positions ``drop`` (which ones is the engine's policy).

        Raises ``RunNotFound``, or ``InvalidRunState`` when the run is not failed.
        """
        ...

    # -- leases (each its own transaction, never batched) ---------------------
    def renew_leases(self, owner: str, lease: float, run_ids: Sequence[str]) -> int:
        """Extend by ``lease`` seconds the leases ``owner`` holds on these runs, and mark
        the worker seen; return how many leases it holds. Fails fast (the heartbeat
        retries at its next tick) and never waits behind the group-commit writer."""
        ...

    def release_owner(self, owner: str, dead: bool = False) -> int:
        """Take back every lease of ``owner`` (bumping epochs), so peers resume its
        runs at once; return how many. For a draining worker, or (``dead``) one that
        died: the next claim of each of its runs then counts as a recovery."""
        ...

    def release_run(self, lease: Lease) -> None:
        """Give up one run (bumping its epoch) so any worker resumes it; fenced, and
        silent when the lease is no longer held."""
        ...

    # -- workers (each its own transaction) -------------------------------------------
    def register_worker(self, worker: WorkerInfo) -> None:
        """Announce a live executor (replacing its earlier announcement); forget those
        not seen for a day."""
        ...

    def remove_worker(self, worker_id: str) -> None:
        """Forget an executor that stopped."""
        ...

    def live_workers(self) -> list[WorkerInfo]:
        """The executors seen within two of their leases, oldest first."""
        ...

    def waiting_kinds(self, limit: int = 100) -> list[tuple[str, str]]:
        """Up to ``limit`` distinct (workflow, queue) of the runs due and held by nobody."""
        ...

    # -- reads (each its own snapshot, outside any batch) -----------------------
    def now(self) -> float:
        """The store's time (see the module's docstring), seconds since the epoch."""
        ...

    def lease_owners(self) -> list[str]:
        """Distinct owners currently holding leases, live or expired."""
        ...

    def cancel_requests(self, owner: str) -> dict[str, str]:
        """The runs held by ``owner`` that were asked to cancel, with the reason given."""
        ...

    def get_run(self, run_id: str) -> RunRow | None:
        """The run with this id, or ``None``."""
        ...

    def journal(self, run_id: str, start: int = 0, limit: int | None = None) -> list[JournalEntry]:
        """The run's journal entries in position order from position ``start``, at most
        ``limit`` of them (empty for an unknown run)."""
        ...

    def pending_signals(self, run_id: str) -> list[tuple[str, str | None, float]]:
        """The signals sent to the run and not received yet: ``(name, payload, sent_at)``
        in the order they were sent."""
        ...

    def journal_size(self, run_id: str) -> int:
        """How many positions the run's journal has."""
        ...

    def get_event(self, run_id: str, key: str) -> tuple[bool, str | None]:
        """Whether the run published an event under ``key``, and its value."""
        ...

    def next_wakeup(self, workflows: Sequence[str]) -> float | None:
        """The earliest ``available_at`` among unleased runs of these workflows."""
        ...

    def due_runs(self, limit: int) -> list[DueRun]:
        """Up to ``limit`` runs a worker may claim now (due, held by nobody or by an
        expired lease, not ended), the longest due first."""
        ...

    # -- notifications -------------------------------------------------------------
    def listen(
        self,
        on_ready: Callable[[], None],
        on_done: Callable[[str], None],
        on_schedules: Callable[[], None] | None = None,
    ) -> Callable[[], None]:
        """Call back when runs become runnable or finish, or schedules are changed, in any
        process (see :meth:`ScheduleStore.announce_schedules`); returns a stopper.

        A store without notifications returns at once (callers poll instead).
        """
        ...

    def close(self) -> None:
        """Release the store's connections and threads; later calls raise ``StoreClosed``."""
        ...


def redact(url: str) -> str:
    """A store URL without its password (in the address or as ``?password=``), for
    messages and logs."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return url
    if password:
        url = url.replace(f":{password}@", ":***@", 1)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)

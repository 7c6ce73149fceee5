"""The store's protocols by concern, of which :class:`~durably.stores.base.Store` is the
union (see :mod:`durably.stores.base`): a transaction's handle, what operators ask,
schedules, and what a test's virtual clock needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from durably.records import NewRun, RunFilter, RunRow
from durably.schedules import ScheduleSpec
from durably.ticking import ScheduleRow, ScheduleState, Tick


class Transaction(Protocol):
    """An open transaction of a store. Opaque above the store: code there only
    hands it back to the store's operations, inside the work given to
    :meth:`Store.transact`."""


class AdminStore(Protocol):
    """What operators ask of the store (the CLI, the dashboard, retention): pages of
    runs, counts, history, forks, purges. None of it is on the hot path."""

    def list_runs(
        self, where: RunFilter, limit: int, after: tuple[float, str] | None = None
    ) -> list[RunRow]:
        """Up to ``limit`` runs matching ``where``, newest first (by creation time, then
        id, both descending); ``after`` (a run's creation time and id) starts the page
        just past that run: keyset pagination, stable while runs are added."""
        ...

    def count_runs(self, where: RunFilter) -> int:
        """How many runs match ``where``."""
        ...

    def add_history(
        self,
        tx: Transaction,
        run_id: str,
        kind: str,
        detail: dict[str, Any],
        at: float | None = None,
    ) -> None:
        """Record one event of a run's life, at store time ``at`` (default: now). Not
        fenced: a stale worker's account of what it did is still true history."""
        ...

    def history(self, run_id: str) -> list[tuple[float, str, dict[str, Any]]]:
        """The recorded events of the run, in the order they were written: (store
        time, kind, details). Claims, suspensions, releases, failed attempts, cancel
        requests, retries and forks; what the journal and the run's row tell (steps,
        creation, the end) is not repeated here."""
        ...

    def fork_run(self, tx: Transaction, source_id: str, new: NewRun, upto: int) -> RunRow:
        """Create ``new`` with a copy of the journal of ``source_id`` before position
        ``upto``; ``ValueError`` if ``new``'s id is taken."""
        ...

    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        """Take (or renew, for the same owner) a named lease for ``ttl`` seconds;
        whether it is held now. Its own transaction."""
        ...

    def release_lock(self, name: str, owner: str) -> None:
        """Give up a named lease (nothing if another owner holds it)."""
        ...

    def purge(self, cutoffs: Mapping[str, float], limit: int, dry_run: bool = False) -> int:
        """Delete, in one transaction, up to ``limit`` whole run trees (a root, its
        descendants, its continue-as-new chain, with their journals, signals, events
        and history) whose every run ended before the cutoff (store time) of its
        status; statuses not in ``cutoffs`` and runs not ended are never deleted.
        Returns how many runs went (or would go, with ``dry_run``)."""
        ...

    def vacuum(self, full: bool = False) -> None:
        """Give the space of deleted rows back. ``full`` may take long and lock the
        database (SQLite rewrites the file; PostgreSQL VACUUM ANALYZE); without it,
        only what is cheap (SQLite's incremental vacuum)."""
        ...

    def running_counts(self) -> dict[str, int]:
        """Per lease owner, how many runs it holds now."""
        ...

    def queue_stats(self) -> list[tuple[str, str, int, float | None]]:
        """Runs not ended, by ``(queue, status, count, oldest)``: ``oldest`` is the
        earliest ``available_at`` (store time) of those due now and held by no live
        lease (waiting for a worker), None if none is."""
        ...

    def events(self, run_id: str) -> list[tuple[str, str | None, float]]:
        """Every event the run set: ``(key, encoded value, store time set)``, by key."""
        ...

    def schema_version(self) -> int:
        """The version of the database's schema (0: none yet); only read."""
        ...

    def migrate(self, target: int | None = None) -> None:
        """Bring the schema to version ``target`` (default: the newest this code knows)."""
        ...


class ScheduleStore(Protocol):
    """Schedules and the ticks they fired. The worker that decides a due schedule holds
    its row (:meth:`due_schedules`, :meth:`lock_schedule`) for the transaction in which
    it starts the tick's run and saves the schedule's next state."""

    def insert_schedule(self, tx: Transaction, spec: ScheduleSpec, state: ScheduleState) -> bool:
        """Create the schedule; False (and nothing changed) if its id exists."""
        ...

    def update_schedule(self, tx: Transaction, spec: ScheduleSpec, state: ScheduleState) -> None:
        """Replace the spec and state of the schedule ``spec.id``."""
        ...

    def save_states(self, tx: Transaction, states: Sequence[tuple[str, ScheduleState]]) -> None:
        """Replace the state of each schedule ``(id, state)`` (their specs stay): what
        firing them changes."""
        ...

    def lock_schedule(self, tx: Transaction, schedule_id: str) -> ScheduleRow | None:
        """The schedule, held by this transaction until it ends (None: no such id)."""
        ...

    def due_schedules(self, tx: Transaction, limit: int) -> list[ScheduleRow]:
        """Up to ``limit`` active schedules due now (``due_at <= now``), earliest first,
        held by this transaction; ones another transaction holds are passed over."""
        ...

    def delete_schedule(self, tx: Transaction, schedule_id: str) -> bool:
        """Delete the schedule (its ticks stay, with the runs they name)."""
        ...

    def schedules(self, ids: Sequence[str] | None = None) -> list[ScheduleRow]:
        """The schedules with these ids (all if None), by id."""
        ...

    def next_schedule_due(self) -> float | None:
        """When the earliest active schedule is due (store time); None if none is."""
        ...

    def add_ticks(self, tx: Transaction, ticks: Sequence[tuple[str, str, float, str]]) -> None:
        """Record each ``(run_id, schedule_id, nominal, kind)``: that ``run_id`` is the
        run of this tick (nothing for a tick recorded already)."""
        ...

    def ticks(self, schedule_id: str, limit: int) -> list[Tick]:
        """The schedule's newest ``limit`` ticks, newest first."""
        ...

    def tick_of_run(self, run_id: str) -> Tick | None:
        """The tick that started ``run_id``, if a schedule started it."""
        ...

    def announce_schedules(self, tx: Transaction) -> None:
        """Tell the schedulers of other processes, once ``tx`` commits, that schedules
        changed (nothing where there are no notifications: they poll)."""
        ...


class VirtualClockStore(Protocol):
    """What a test's :class:`~durably.testing.VirtualClock` needs of the store
    (``durably.testing.TestEngine``); nothing else calls it."""

    def idle_state(self, owner: str, workflows: Sequence[str]) -> tuple[int, float | None, float]:
        """For a test's virtual clock: ``(held, due, now)``, the runs ``owner`` holds,
        the earliest store time another run of ``workflows`` may be claimed (due, or
        a stranger's lease ends) or a schedule fires, and the store's time."""
        ...

    def follow_clock(self, offset: float | None) -> None:
        """Test mode: make the database's clock this host's plus ``offset`` seconds (a
        PostgreSQL schema's); ``None`` gives it back its own."""
        ...

    def clock_moved(self, owner: str | None, seconds: float) -> None:
        """Test mode: the clock jumps ``seconds`` forward; ``owner``'s leases and locks
        move with it (their heartbeat kept them alive through the real time)."""
        ...

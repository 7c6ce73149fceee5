"""SQL of what passes between runs and the outside: signals, events, children, cancels.

Multi-statement operations write their fenced statement first, so a
``LeaseLost`` leaves nothing behind in the batch's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from durably.errors import ErrorInfo, InvalidRunState, RunNotFound
from durably.records import JournalEntry, Lease, NewRun, RunRow, RunStatus
from durably.stores.schema import RUN_COLUMNS, WAKE, error_text, run_from_row

_DONE = tuple(s.value for s in RunStatus if s.terminal)


class MessageSql:
    """Mixed into :class:`~durably.stores.sql.SqlStore`."""

    if TYPE_CHECKING:  # provided by SqlStore

        def sql(self, text: str) -> str: ...
        def _read(self, text: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def append_entry(self, tx: Any, lease: Lease, entry: JournalEntry) -> None: ...
        def create_run(self, tx: Any, new: NewRun) -> tuple[RunRow, bool]: ...
        def finish_run(
            self,
            tx: Any,
            lease: Lease,
            status: RunStatus,
            output: str | None,
            error: ErrorInfo | None,
            continued_to: str | None = None,
            parent_id: str | None = None,
        ) -> None: ...

    def _status(self, tx: Any, run_id: str) -> str:
        rows = tx.execute(self.sql("SELECT status FROM runs WHERE run_id = ?"), (run_id,))
        found = rows.fetchall()
        if not found:
            raise RunNotFound(f"no run with id {run_id!r}")
        return str(found[0][0])

    # -- signals -----------------------------------------------------------------
    def send_signal(self, tx: Any, run_id: str, name: str, payload: str, key: str) -> None:
        """Queue a signal for a run that has not ended and wake it if it waits.

        ``key`` makes the send idempotent: a retried send with the same key is one signal.
        """
        status = self._status(tx, run_id)
        if status in _DONE:
            raise InvalidRunState(f"run {run_id} is {status}; signals go only to runs not ended")
        tx.execute(
            self.sql(
                "INSERT INTO signals (run_id, name, payload, send_key, created_at) "
                "VALUES (?, ?, ?, ?, {now}) ON CONFLICT DO NOTHING"
            ),
            (run_id, name, payload, key),
        )
        tx.execute(self.sql(f"{WAKE} WHERE run_id = ?"), (run_id,))

    def take_signal(self, tx: Any, lease: Lease, entry: JournalEntry) -> str | None:
        """Receive the oldest pending signal named ``entry.name`` into the journal.

        Returns its payload, or ``None`` (and writes nothing) when none is pending.
        The journal entry and the consumption commit together: each signal is
        received exactly once.
        """
        # A signal this position consumed already wins: the transaction may be a retry
        # of one that committed although its caller was told it failed.
        rows = tx.execute(
            self.sql(
                "SELECT id, payload FROM signals WHERE run_id = ? AND name = ? "
                "AND (consumed_seq IS NULL OR consumed_seq = ?) "
                "ORDER BY consumed_seq IS NULL, id LIMIT 1"
            ),
            (lease.run_id, entry.name, entry.seq),
        ).fetchall()
        if not rows:
            return None
        signal_id, payload = rows[0]
        self.append_entry(tx, lease, replace(entry, output=payload))
        tx.execute(
            self.sql("UPDATE signals SET consumed_seq = ? WHERE id = ?"), (entry.seq, signal_id)
        )
        return str(payload)

    # -- events ------------------------------------------------------------------
    def set_event(self, tx: Any, lease: Lease, entry: JournalEntry, value: str) -> None:
        """Publish ``value`` under ``entry.name`` for outside readers; journaled."""
        self.append_entry(tx, lease, entry)
        tx.execute(
            self.sql(
                "INSERT INTO events (run_id, key, value, updated_at) VALUES (?, ?, ?, {now}) "
                "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at"
            ),
            (lease.run_id, entry.name, value),
        )

    def get_event(self, run_id: str, key: str) -> tuple[bool, str | None]:
        rows = self._read("SELECT value FROM events WHERE run_id = ? AND key = ?", (run_id, key))
        return (True, rows[0][0]) if rows else (False, None)

    # -- children and continuation -------------------------------------------------
    def start_child(
        self, tx: Any, lease: Lease, entry: JournalEntry, child: NewRun
    ) -> tuple[RunRow, bool]:
        """Journal the child's start and create it, atomically (idempotent by its id)."""
        self.append_entry(tx, lease, entry)
        return self.create_run(tx, child)

    def last_link(self, tx: Any, run_id: str) -> RunRow | None:
        """The run, or the last run of its continue-as-new chain, read inside a transaction."""
        while True:
            rows = tx.execute(
                self.sql(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?"), (run_id,)
            ).fetchall()
            row = run_from_row(rows[0]) if rows else None
            if row is None or row.continued_to is None:
                return row
            run_id = row.continued_to

    def continue_run(self, tx: Any, lease: Lease, successor: NewRun) -> tuple[RunRow, bool]:
        """End this run as completed, linked to ``successor``, and create the successor."""
        self.finish_run(tx, lease, RunStatus.COMPLETED, None, None, successor.run_id)
        return self.create_run(tx, successor)

    # -- cancellation --------------------------------------------------------------
    def cancel_run(self, tx: Any, run_id: str, reason: str) -> bool:
        """Ask a run and all its descendants to cancel; wake the parked ones.

        Returns False when the run was already cancelled. Raises InvalidRunState
        for a completed or failed run.
        """
        status = self._status(tx, run_id)
        if status == RunStatus.CANCELLED.value:
            return False
        if status in _DONE:
            raise InvalidRunState(f"run {run_id} is {status}; it can no longer be cancelled")
        done = ",".join(f"'{s}'" for s in _DONE)
        tx.execute(
            self.sql(
                "WITH RECURSIVE tree(id) AS (SELECT CAST(? AS TEXT) UNION "
                "SELECT r.run_id FROM runs r JOIN tree ON r.parent_id = tree.id) "
                "UPDATE runs SET cancel_requested = 1, error = ?, updated_at = {now}, "
                "available_at = CASE WHEN owner IS NULL THEN {now} ELSE available_at END "
                f"WHERE run_id IN (SELECT id FROM tree) AND status NOT IN ({done})"
            ),
            (run_id, error_text(ErrorInfo("WorkflowCancelled", reason))),
        )
        return True

    def cancel_requests(self, owner: str) -> list[str]:
        """Runs held by ``owner`` that were asked to cancel."""
        rows = self._read(
            "SELECT run_id FROM runs WHERE owner = ? AND cancel_requested = 1", (owner,)
        )
        return [r[0] for r in rows]

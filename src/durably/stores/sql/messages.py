"""SQL of what passes between runs and the outside: signals, events, links, cancels.

Multi-statement operations write their fenced statement first, so a
``LeaseLost`` leaves nothing behind in the batch's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from durably.errors import ErrorInfo, InvalidRunState
from durably.records import JournalEntry, Lease, RunRow, RunStatus
from durably.stores.base import Transaction
from durably.stores.sql.rows import RUN_COLUMNS, error_from_text, error_text, run_from_row
from durably.stores.sql.statements import execute, placeholders

_DONE = tuple(s.value for s in RunStatus if s.terminal)


class MessageSql:
    """Mixed into :class:`~durably.stores.sql.store.SqlStore`."""

    if TYPE_CHECKING:  # provided by SqlStore

        def sql(self, name: str, **parts: str) -> str: ...
        def inline(self, statement: str) -> str: ...
        def _read(self, statement: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def _status(self, tx: Transaction, run_id: str) -> str: ...
        def append_entry(self, tx: Transaction, lease: Lease, entry: JournalEntry) -> None: ...
        def add_history(
            self,
            tx: Transaction,
            run_id: str,
            kind: str,
            detail: dict[str, Any],
            at: float | None = None,
        ) -> None: ...

    # -- signals -----------------------------------------------------------------
    def send_signal(self, tx: Transaction, run_id: str, name: str, payload: str, key: str) -> None:
        status = self._status(tx, run_id)
        if status in _DONE:
            raise InvalidRunState(f"run {run_id} is {status}; signals go only to runs not ended")
        execute(tx, self.sql("queue_signal"), (run_id, name, payload, key))
        execute(tx, self.sql("wake"), (run_id,))

    def take_signal(self, tx: Transaction, lease: Lease, entry: JournalEntry) -> str | None:
        rows = execute(
            tx, self.sql("next_signal"), (lease.run_id, entry.name, entry.seq)
        ).fetchall()
        if not rows:
            return None
        signal_id, payload = rows[0]
        self.append_entry(tx, lease, replace(entry, output=payload))
        execute(tx, self.sql("consume_signal"), (entry.seq, signal_id))
        return str(payload)

    # -- events ------------------------------------------------------------------
    def set_event(self, tx: Transaction, lease: Lease, entry: JournalEntry, value: str) -> None:
        self.append_entry(tx, lease, entry)
        execute(tx, self.sql("publish_event"), (lease.run_id, entry.name, value))

    def get_event(self, run_id: str, key: str) -> tuple[bool, str | None]:
        statement = self.inline("SELECT value FROM events WHERE run_id = ? AND key = ?")
        rows = self._read(statement, (run_id, key))
        return (True, rows[0][0]) if rows else (False, None)

    # -- continue-as-new chains ------------------------------------------------------
    def last_links(self, tx: Transaction, run_ids: Sequence[str]) -> dict[str, RunRow]:
        links: dict[str, RunRow] = {}
        origins = {run_id: run_id for run_id in run_ids}  # a chain's next link -> its start
        while origins:
            ids = list(origins)
            following: dict[str, str] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                where = f"WHERE run_id IN ({placeholders(len(chunk))})"
                statement = self.inline(f"SELECT {RUN_COLUMNS} FROM runs {where}")
                for row in map(run_from_row, execute(tx, statement, chunk).fetchall()):
                    if row.continued_to is None:
                        links[origins[row.run_id]] = row
                    else:
                        following[row.continued_to] = origins[row.run_id]
            origins = following
        return links

    # -- cancellation --------------------------------------------------------------
    def cancel_run(self, tx: Transaction, run_id: str, reason: str) -> bool:
        status = self._status(tx, run_id)
        if status == RunStatus.CANCELLED.value:
            return False
        if status in _DONE:
            raise InvalidRunState(f"run {run_id} is {status}; it can no longer be cancelled")
        error = error_text(ErrorInfo("WorkflowCancelled", reason))
        execute(tx, self.sql("cancel_tree"), (run_id, error))
        self.add_history(tx, run_id, "cancel requested", {"reason": reason})
        return True

    def cancel_requests(self, owner: str) -> dict[str, str]:
        statement = self.inline(
            "SELECT run_id, error FROM runs WHERE owner = ? AND cancel_requested = 1"
        )
        requests = {}
        for run_id, error in self._read(statement, (owner,)):
            info = error_from_text(error)
            requests[run_id] = info.message if info is not None else ""
        return requests

"""The SQL of every store, written once for both dialects.

Statements use ``?`` placeholders and ``{now}`` for the database clock; a
dialect subclass supplies connections, the clock expression, the claim lock
clause and error classification.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

from durably.errors import ErrorInfo, InvalidRunState, LeaseLost, RunNotFound
from durably.records import EntryStatus, JournalEntry, Lease, NewRun, RunRow, RunStatus
from durably.stores.schema import (
    ENTRY_COLUMNS,
    FENCE,
    RUN_COLUMNS,
    WAKE,
    entry_from_row,
    error_text,
    run_from_row,
)
from durably.stores.sql_claims import ClaimSql
from durably.stores.sql_messages import MessageSql

T = TypeVar("T")


class SqlStore(ClaimSql, MessageSql):
    """Domain operations in SQL; subclasses provide connections and the dialect."""

    dialect: ClassVar[str]
    #: SQL expression for the database's clock, in seconds since the epoch.
    NOW: ClassVar[str]

    _adapted: dict[str, str]

    def sql(self, text: str) -> str:
        """Adapt a statement to this dialect (clock expression, placeholders); cached."""
        try:
            return self._adapted[text]
        except AttributeError:
            self._adapted = {}
        except KeyError:
            pass
        adapted = self._adapted[text] = self._adapt(text)
        return adapted

    def _adapt(self, text: str) -> str:
        return text.replace("{now}", self.NOW)

    def _read(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def transact(self, work: Callable[[Any], T]) -> T:
        raise NotImplementedError

    def _write(self, text: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction; return the row count."""
        sql = self.sql(text)
        return self.transact(lambda tx: int(tx.execute(sql, params).rowcount))

    @staticmethod
    def _placeholders(n: int) -> str:
        return ",".join("?" * n)

    def listen(
        self, on_ready: Callable[[], None], on_done: Callable[[str], None]
    ) -> Callable[[], None]:
        return lambda: None  # no notifications in this dialect: callers poll

    # -- writes ----------------------------------------------------------------
    def create_run(self, tx: Any, new: NewRun) -> tuple[RunRow, bool]:
        claimed = new.owner is not None
        status = RunStatus.RUNNING if claimed else RunStatus.PENDING
        # No RETURNING: on SQLite it costs more than the insert itself. The new row
        # is known already; only a conflict (an idempotent restart) reads it back.
        cur = tx.execute(
            self.sql(
                "INSERT INTO runs (run_id, workflow, status, input, queue, priority, "
                "idempotency_key, parent_id, root_id, partition_key, owner, epoch, lease_until, "
                "available_at, attempts, started_at, created_at, updated_at) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, "
                "COALESCE((SELECT root_id FROM runs WHERE run_id = ?), ?), ?, ?, ?, "
                "{now} + ?, {now} + ?, ?, CASE WHEN ? THEN {now} END, {now}, {now}) "
                "ON CONFLICT DO NOTHING"
            ),
            (
                new.run_id,
                new.workflow,
                status.value,
                new.input,
                new.queue,
                new.priority,
                new.idempotency_key,
                new.parent_id,
                new.parent_id,
                new.run_id,
                new.partition_key,
                new.owner,
                1 if claimed else 0,
                new.lease if claimed else None,
                new.delay,
                1 if claimed else 0,
                claimed,
            ),
        )
        if cur.rowcount == 1:
            now = time.time()
            row = RunRow(
                run_id=new.run_id,
                workflow=new.workflow,
                status=status,
                input=new.input,
                output=None,
                error=None,
                current_step=None,
                queue=new.queue,
                priority=new.priority,
                idempotency_key=new.idempotency_key,
                parent_id=new.parent_id,
                attempts=1 if claimed else 0,
                epoch=1 if claimed else 0,
                owner=new.owner,
                created_at=now,
                updated_at=now,
                partition_key=new.partition_key,
            )
            return row, True
        existing = tx.execute(
            self.sql(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ? OR idempotency_key = ?"),
            (new.run_id, new.idempotency_key),
        ).fetchall()
        # The key wins over the id: a retried request with a fresh id finds its run.
        by_key = [r for r in existing if new.idempotency_key and r[9] == new.idempotency_key]
        return run_from_row((by_key or existing)[0]), False

    def append_entry(self, tx: Any, lease: Lease, entry: JournalEntry) -> None:
        cur = tx.execute(
            self.sql(
                "INSERT INTO journal (run_id, seq, kind, name, status, output, error, attempts, "
                "started_at, finished_at, call_site) SELECT ?, ?, ?, ?, ?, CAST(? AS TEXT), "
                "CAST(? AS TEXT), ?, CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), ? "
                f"WHERE EXISTS (SELECT 1 FROM runs WHERE {FENCE}) "
                "ON CONFLICT (run_id, seq) DO UPDATE SET status = excluded.status, "
                "output = excluded.output, error = excluded.error, "
                "attempts = excluded.attempts, finished_at = excluded.finished_at"
            ),
            (
                lease.run_id,
                entry.seq,
                entry.kind,
                entry.name,
                entry.status.value,
                entry.output,
                error_text(entry.error),
                entry.attempts,
                entry.started_at,
                entry.finished_at,
                entry.call_site,
                lease.run_id,
                lease.epoch,
                lease.owner,
            ),
        )
        if cur.rowcount == 0:
            raise LeaseLost(f"run {lease.run_id}: lease epoch {lease.epoch} was taken over")

    def _fenced_update(
        self, tx: Any, lease: Lease, assignments: str, params: Sequence[Any], where: str = ""
    ) -> None:
        cur = tx.execute(
            self.sql(f"UPDATE runs SET {assignments}, updated_at = {{now}} WHERE {FENCE}{where}"),
            (*params, lease.run_id, lease.epoch, lease.owner),
        )
        if cur.rowcount == 0:
            raise LeaseLost(f"run {lease.run_id}: lease epoch {lease.epoch} was taken over")

    def set_progress(self, tx: Any, lease: Lease, current_step: str | None) -> None:
        # Only while running: a late progress write must not touch a finished run.
        self._fenced_update(
            tx, lease, "current_step = ?", (current_step,), f" AND status = '{RunStatus.RUNNING}'"
        )

    def suspend_run(
        self, tx: Any, lease: Lease, status: RunStatus, available_at: float | None
    ) -> None:
        # A cancel, or a wake-up for a wait (signal, child) that came while the run
        # was executing, makes it runnable at once instead of parking it.
        self._fenced_update(
            tx,
            lease,
            "status = ?, available_at = CASE WHEN cancel_requested = 1 OR (wake_pending = 1 "
            "AND ?) THEN {now} ELSE ? END, wake_pending = 0, owner = NULL, lease_until = NULL, "
            "current_step = NULL",
            (status.value, status is RunStatus.WAITING, available_at),
        )

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
        self._fenced_update(
            tx,
            lease,
            "status = ?, output = ?, error = ?, continued_to = ?, available_at = NULL, "
            "owner = NULL, lease_until = NULL, current_step = NULL",
            (status.value, output, error_text(error), continued_to),
        )
        if parent_id is not None and continued_to is None:  # a parent waits for a chain's end
            tx.execute(self.sql(f"{WAKE} WHERE run_id = ?"), (parent_id,))

    def retry_run(self, tx: Any, run_id: str) -> None:
        status = self.sql("SELECT status FROM runs WHERE run_id = ?")
        rows = tx.execute(status, (run_id,)).fetchall()
        if not rows:
            raise RunNotFound(f"no run with id {run_id!r}")
        if rows[0][0] != RunStatus.FAILED.value:
            raise InvalidRunState(f"run {run_id} is {rows[0][0]}; only failed runs can be retried")
        tx.execute(
            self.sql(
                "DELETE FROM journal WHERE run_id = ? AND status = ? AND seq = "
                "(SELECT MAX(seq) FROM journal WHERE run_id = ?)"
            ),
            (run_id, EntryStatus.FAILED.value, run_id),
        )
        tx.execute(
            self.sql(
                "UPDATE runs SET status = ?, error = NULL, available_at = {now}, "
                "updated_at = {now} WHERE run_id = ?"
            ),
            (RunStatus.PENDING.value, run_id),
        )

    # -- leases ----------------------------------------------------------------
    def renew_leases(self, owner: str, lease: float, run_ids: Sequence[str]) -> int:
        renewed = 0
        for start in range(0, len(run_ids), 500):
            chunk = run_ids[start : start + 500]
            renewed += self._write(
                "UPDATE runs SET lease_until = {now} + ? WHERE owner = ? "
                f"AND run_id IN ({self._placeholders(len(chunk))})",
                (lease, owner, *chunk),
            )
        return renewed

    def release_owner(self, owner: str) -> int:
        return self._write(
            self.sql(
                "UPDATE runs SET owner = NULL, lease_until = NULL, epoch = epoch + 1, "
                "status = CASE WHEN status = ? THEN ? ELSE status END, "
                "available_at = COALESCE(available_at, {now}) WHERE owner = ?"
            ),
            (RunStatus.RUNNING.value, RunStatus.PENDING.value, owner),
        )

    def release_run(self, lease: Lease) -> None:
        self._write(
            "UPDATE runs SET owner = NULL, lease_until = NULL, epoch = epoch + 1, "
            "status = CASE WHEN status = ? THEN ? ELSE status END, current_step = NULL, "
            f"available_at = COALESCE(available_at, {{now}}) WHERE {FENCE}",
            (
                RunStatus.RUNNING.value,
                RunStatus.PENDING.value,
                lease.run_id,
                lease.epoch,
                lease.owner,
            ),
        )

    def clock(self) -> float:
        """The database's clock, in seconds since the epoch."""
        return float(self._read("SELECT {now}")[0][0])

    def lease_owners(self) -> list[str]:
        return [r[0] for r in self._read("SELECT DISTINCT owner FROM runs WHERE owner IS NOT NULL")]

    # -- reads -----------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRow | None:
        rows = self._read(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,))
        return run_from_row(rows[0]) if rows else None

    def list_runs(self, workflow: str | None, status: RunStatus | None, limit: int) -> list[RunRow]:
        where, params = ["1 = 1"], []
        if workflow is not None:
            where.append("workflow = ?")
            params.append(workflow)
        if status is not None:
            where.append("status = ?")
            params.append(RunStatus(status).value)
        rows = self._read(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, run_id LIMIT ?",
            (*params, limit),
        )
        return [run_from_row(r) for r in rows]

    def journal(self, run_id: str) -> list[JournalEntry]:
        rows = self._read(
            f"SELECT {ENTRY_COLUMNS} FROM journal WHERE run_id = ? ORDER BY seq", (run_id,)
        )
        return [entry_from_row(r) for r in rows]

    def next_wakeup(self, workflows: Sequence[str]) -> float | None:
        if not workflows:
            return None
        rows = self._read(
            "SELECT MIN(available_at) FROM runs WHERE available_at IS NOT NULL "
            f"AND owner IS NULL AND workflow IN ({self._placeholders(len(workflows))})",
            tuple(workflows),
        )
        return rows[0][0] if rows else None

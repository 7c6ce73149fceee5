"""The SQL of every store, written once for both dialects.

Statements live in ``queries/*.sql`` (see :mod:`durably.stores.sql.statements`);
a dialect subclass supplies connections, transactions, error classification, its
parts of the statements (``{claim_lock}``) and its placeholder style.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

from durably.clock import Clock
from durably.errors import ErrorInfo, InvalidRunState, LeaseLost, RunNotFound
from durably.records import DueRun, JournalEntry, Lease, NewRun, RunRow, RunStatus, WorkerInfo
from durably.stores.base import Transaction
from durably.stores.sql.admin import AdminSql
from durably.stores.sql.claims import ClaimSql
from durably.stores.sql.messages import MessageSql
from durably.stores.sql.rows import (
    ENTRY_COLUMNS,
    RUN_COLUMNS,
    entry_from_row,
    error_text,
    run_from_row,
    worker_from_row,
)
from durably.stores.sql.schedules import ScheduleSql
from durably.stores.sql.statements import execute, load, placeholders, render

T = TypeVar("T")
_GROUPS = ("runs", "claims", "messages", "admin", "schedules")


class SqlStore(ClaimSql, MessageSql, AdminSql, ScheduleSql):
    """Domain operations in SQL; subclasses provide connections and the dialect."""

    #: The dialect's parts of the statements, by the name they have there.
    PARTS: ClassVar[dict[str, str]] = {"claim_lock": "", "row_lock": ""}
    max_batch = 1000
    commits_on_loop: bool
    clock: Clock

    _templates: dict[str, str]
    _statements: dict[str, str]
    _dynamic: dict[tuple[str, tuple[tuple[str, str], ...]], str]

    def _prepare(self) -> None:
        """Adapt every statement to this dialect, once (the hot path only looks them up)."""
        self._templates = {
            name: render(text, **self.PARTS)
            for group in _GROUPS
            for name, text in load(group).items()
        }
        self._statements = {name: self._adapt(t) for name, t in self._templates.items()}
        self._dynamic = {}

    def _adapt(self, statement: str) -> str:
        """The statement in this dialect's placeholder style (``?`` as written)."""
        return statement

    def sql(self, name: str, **parts: str) -> str:
        """The named statement, with the call's own ``parts`` (lists of ids, written
        with ``?``) filled in, in this dialect's placeholder style."""
        if not parts:
            return self._statements[name]
        key = (name, tuple(parts.items()))
        try:
            return self._dynamic[key]
        except KeyError:
            adapted = self._dynamic[key] = self._adapt(self.template(name, **parts))
            return adapted

    def template(self, name: str, **parts: str) -> str:
        """The named statement as written (``?`` placeholders), to nest in another."""
        return render(self._templates[name], **parts)

    def inline(self, statement: str) -> str:
        """A statement written in code (short ones), adapted and cached like the others."""
        try:
            return self._dynamic[(statement, ())]
        except KeyError:
            adapted = self._dynamic[(statement, ())] = self._adapt(statement)
            return adapted

    def _read(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run an adapted query outside any batch; return its rows."""
        raise NotImplementedError

    def transact(self, work: Callable[[Transaction], T]) -> T:
        raise NotImplementedError

    def _write(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run one adapted statement in its own transaction; return the row count."""
        return self.transact(lambda tx: int(execute(tx, statement, params).rowcount))

    def listen(
        self,
        on_ready: Callable[[], None],
        on_done: Callable[[str], None],
        on_schedules: Callable[[], None] | None = None,
    ) -> Callable[[], None]:
        return lambda: None  # no notifications in this dialect: callers poll

    # -- writes ----------------------------------------------------------------
    def create_run(self, tx: Transaction, new: NewRun) -> tuple[RunRow, bool]:
        claimed = new.owner is not None
        status = RunStatus.RUNNING if claimed else RunStatus.PENDING
        # No RETURNING: on SQLite it costs more than the insert itself. The new row
        # is known already; only a conflict (an idempotent restart) reads it back.
        cur = execute(
            tx,
            self._statements["create_run"],
            (
                new.run_id,
                new.workflow,
                status.value,
                new.input,
                new.queue,
                new.priority,
                new.idempotency_key,
                new.parent_id,
                new.root_id,
                new.parent_id,
                new.run_id,
                new.partition_key,
                new.owner,
                1 if claimed else 0,
                new.lease if claimed else None,
                new.delay,
                1 if claimed else 0,
                claimed,
                new.trace,
            ),
        )
        if cur.rowcount == 1:
            now = self.clock.time()
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
                trace=new.trace,
            )
            return row, True
        existing = execute(
            tx, self._statements["existing_runs"], (new.run_id, new.idempotency_key)
        ).fetchall()
        # The key wins over the id: a retried request with a fresh id finds its run.
        by_key = [r for r in existing if new.idempotency_key and r[9] == new.idempotency_key]
        return run_from_row((by_key or existing)[0]), False

    def append_entry(self, tx: Transaction, lease: Lease, entry: JournalEntry) -> None:
        cur = execute(
            tx,
            self._statements["append_entry"],
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
            raise _lost(lease)

    def _fenced(self, tx: Transaction, name: str, lease: Lease, params: Sequence[Any]) -> None:
        cur = execute(tx, self._statements[name], (*params, lease.run_id, lease.epoch, lease.owner))
        if cur.rowcount == 0:
            raise _lost(lease)

    def set_progress(self, tx: Transaction, lease: Lease, current_step: str | None) -> None:
        self._fenced(tx, "set_progress", lease, (current_step,))

    def suspend_run(
        self, tx: Transaction, lease: Lease, status: RunStatus, available_at: float | None
    ) -> None:
        self._fenced(
            tx, "suspend_run", lease, (status.value, status is RunStatus.WAITING, available_at)
        )
        detail = {"status": status.value, "until": available_at}
        self.add_history(tx, lease.run_id, "suspended", detail)

    def add_history(
        self,
        tx: Transaction,
        run_id: str,
        kind: str,
        detail: dict[str, Any],
        at: float | None = None,
    ) -> None:
        params = (run_id, at, kind, json.dumps(detail))
        execute(tx, self._statements["add_history"], params)

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
        self._fenced(
            tx, "finish_run", lease, (status.value, output, error_text(error), continued_to)
        )
        if parent_id is not None and continued_to is None:  # a parent waits for a chain's end
            execute(tx, self._statements["wake"], (parent_id,))

    def retry_run(self, tx: Transaction, run_id: str, drop: Sequence[int]) -> None:
        status = self._status(tx, run_id)
        if status != RunStatus.FAILED.value:
            raise InvalidRunState(f"run {run_id} is {status}; only failed runs can be retried")
        if drop:
            statement = self.sql("drop_failed_entries", seqs=placeholders(len(drop)))
            execute(tx, statement, (run_id, *drop))
        execute(tx, self._statements["make_runnable"], (run_id,))
        self.add_history(tx, run_id, "retried", {"rerun_positions": list(drop)})

    def _status(self, tx: Transaction, run_id: str) -> str:
        found = execute(
            tx, self.inline("SELECT status FROM runs WHERE run_id = ?"), (run_id,)
        ).fetchall()
        if not found:
            raise RunNotFound(f"no run with id {run_id!r}")
        return str(found[0][0])

    # -- leases ----------------------------------------------------------------
    def renew_leases(self, owner: str, lease: float, run_ids: Sequence[str]) -> int:
        """In one transaction, one statement per 500 runs (SQLite's parameter limit)."""

        def renew(tx: Transaction) -> int:
            execute(tx, self._statements["touch_worker"], (owner,))
            renewed = 0
            for start in range(0, len(run_ids), 500):
                chunk = run_ids[start : start + 500]
                statement = self.sql("renew_leases", ids=placeholders(len(chunk)))
                renewed += execute(tx, statement, (lease, owner, *chunk)).rowcount
            return renewed

        return self.transact(renew)

    def release_owner(self, owner: str, dead: bool = False) -> int:
        why = "its worker died" if dead else "its worker stopped"
        detail = json.dumps({"reason": why, "worker": owner})

        def release(tx: Transaction) -> int:
            execute(tx, self._statements["history_of_release"], (detail, owner))
            return int(execute(tx, self._statements["release_owner"], (dead, dead, owner)).rowcount)

        return self.transact(release)

    def release_run(self, lease: Lease) -> None:
        def release(tx: Transaction) -> None:
            params = (lease.run_id, lease.epoch, lease.owner)
            if execute(tx, self._statements["release_run"], params).rowcount:
                detail = {"reason": "the database failed a write", "worker": lease.owner}
                self.add_history(tx, lease.run_id, "released", detail)

        self.transact(release)

    # -- workers -------------------------------------------------------------------
    def register_worker(self, worker: WorkerInfo) -> None:
        queues = None if worker.queues is None else json.dumps(list(worker.queues))
        params = (
            worker.worker_id,
            worker.host,
            worker.pid,
            queues,
            json.dumps(list(worker.workflows)),
            worker.lease,
            worker.concurrency,
            None if worker.patterns is None else json.dumps(list(worker.patterns)),
            json.dumps(dict(worker.versions)),
        )

        def register(tx: Transaction) -> None:
            execute(tx, self._statements["forget_stale_workers"])
            execute(tx, self._statements["register_worker"], params)

        self.transact(register)

    def remove_worker(self, worker_id: str) -> None:
        self._write(self.inline("DELETE FROM workers WHERE worker_id = ?"), (worker_id,))

    def live_workers(self) -> list[WorkerInfo]:
        return [worker_from_row(r) for r in self._read(self._statements["live_workers"])]

    def waiting_kinds(self, limit: int = 100) -> list[tuple[str, str]]:
        rows = self._read(self._statements["waiting_kinds"], (self.now(), limit))
        return [(r[0], r[1]) for r in rows]

    def lease_owners(self) -> list[str]:
        statement = self.inline("SELECT DISTINCT owner FROM runs WHERE owner IS NOT NULL")
        return [r[0] for r in self._read(statement)]

    # -- reads -----------------------------------------------------------------
    def now(self) -> float:
        return float(self._read(self.inline("SELECT durably_now()"))[0][0])

    def get_run(self, run_id: str) -> RunRow | None:
        statement = self.inline(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?")
        rows = self._read(statement, (run_id,))
        return run_from_row(rows[0]) if rows else None

    def journal(self, run_id: str, start: int = 0, limit: int | None = None) -> list[JournalEntry]:
        if start == 0 and limit is None:
            statement = self.inline(
                f"SELECT {ENTRY_COLUMNS} FROM journal WHERE run_id = ? ORDER BY seq"
            )
            return [entry_from_row(r) for r in self._read(statement, (run_id,))]
        statement = self.inline(
            f"SELECT {ENTRY_COLUMNS} FROM journal WHERE run_id = ? AND seq >= ? "
            "ORDER BY seq LIMIT ?"
        )
        rows = self._read(statement, (run_id, start, 2**62 if limit is None else limit))
        return [entry_from_row(r) for r in rows]

    def pending_signals(self, run_id: str) -> list[tuple[str, str | None, float]]:
        statement = self.inline(
            "SELECT name, payload, created_at FROM signals "
            "WHERE run_id = ? AND consumed_seq IS NULL ORDER BY id"
        )
        return [(n, p, float(at)) for n, p, at in self._read(statement, (run_id,))]

    def journal_size(self, run_id: str) -> int:
        statement = self.inline("SELECT COALESCE(MAX(seq) + 1, 0) FROM journal WHERE run_id = ?")
        return int(self._read(statement, (run_id,))[0][0])

    def next_wakeup(self, workflows: Sequence[str]) -> float | None:
        if not workflows:
            return None
        statement = self.sql("next_wakeup", workflows=placeholders(len(workflows)))
        rows = self._read(statement, tuple(workflows))
        return rows[0][0] if rows else None

    def due_runs(self, limit: int) -> list[DueRun]:
        return [DueRun(*row) for row in self._read(self.sql("due_runs"), (limit,))]


def _lost(lease: Lease) -> LeaseLost:
    return LeaseLost(f"run {lease.run_id}: lease epoch {lease.epoch} was taken over")

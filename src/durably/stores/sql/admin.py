"""SQL of what operators ask: filtered pages of runs, counts, history, forks, the retention
sweeper's lease and purges of whole run trees."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from durably.records import NewRun, RunFilter, RunRow, RunStatus
from durably.stores.base import Transaction
from durably.stores.sql.rows import RUN_COLUMNS, run_from_row
from durably.stores.sql.statements import execute, placeholders

_TABLES_OF_A_RUN = ("journal", "signals", "events", "history", "ticks")
#: The statuses most runs have, left out of the runs_status_created index (its
#: upkeep would be on every run's hot path); a listing of them scans by creation time.
UNINDEXED = (RunStatus.RUNNING, RunStatus.COMPLETED)
#: The index's condition, written as the index has it, so the planner may use it.
_INDEXED = "status NOT IN ('running', 'completed')"


def like(pattern: str) -> str:
    """A workflow-name pattern (``*`` and ``?``, as fnmatch) as an SQL LIKE pattern."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def filter_sql(where: RunFilter) -> tuple[list[str], list[Any]]:
    """The WHERE clauses (``?`` placeholders) and parameters that select ``where``'s runs."""
    clauses: list[str] = []
    params: list[Any] = []
    if where.workflows:
        names = [p for p in where.workflows if "*" not in p and "?" not in p]
        patterns = [p for p in where.workflows if p not in names]
        alternatives = [f"workflow IN ({placeholders(len(names))})"] if names else []
        alternatives += ["workflow LIKE ? ESCAPE '\\'"] * len(patterns)
        clauses.append("(" + " OR ".join(alternatives) + ")")
        params += names + [like(p) for p in patterns]
    if where.statuses:
        clauses.append(f"status IN ({placeholders(len(where.statuses))})")
        params += [RunStatus(s).value for s in where.statuses]
        if len(where.statuses) == 1 and RunStatus(where.statuses[0]) not in UNINDEXED:
            # One status, kept in order by the runs_status_created index (several would
            # be merged and sorted: a scan by creation time finds their newest sooner).
            clauses.append(_INDEXED)
    for column, value in (
        ("queue", where.queue),
        ("parent_id", where.parent_id),
        ("idempotency_key", where.idempotency_key),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if where.since is not None:
        clauses.append("created_at >= ?")
        params.append(where.since)
    if where.until is not None:
        clauses.append("created_at < ?")
        params.append(where.until)
    return clauses, params


class AdminSql:
    """Mixed into :class:`~durably.stores.sql.store.SqlStore`."""

    if TYPE_CHECKING:  # provided by SqlStore

        def sql(self, name: str, **parts: str) -> str: ...
        def inline(self, statement: str) -> str: ...
        def _read(self, statement: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def transact(self, work: Any) -> Any: ...
        def now(self) -> float: ...
        def create_run(self, tx: Transaction, new: NewRun) -> tuple[RunRow, bool]: ...
        def add_history(
            self,
            tx: Transaction,
            run_id: str,
            kind: str,
            detail: dict[str, Any],
            at: float | None = None,
        ) -> None: ...

    def list_runs(
        self, where: RunFilter, limit: int, after: tuple[float, str] | None = None
    ) -> list[RunRow]:
        clauses, params = filter_sql(where)
        if after is not None:  # keyset: the page after the last run of the previous one
            clauses.append("(created_at < ? OR (created_at = ? AND run_id < ?))")
            params += [after[0], after[0], after[1]]
        condition = " AND ".join(clauses) or "1 = 1"
        statement = self.inline(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE {condition} "
            "ORDER BY created_at DESC, run_id DESC LIMIT ?"
        )
        return [run_from_row(r) for r in self._read(statement, (*params, limit))]

    def count_runs(self, where: RunFilter) -> int:
        clauses, params = filter_sql(where)
        condition = " AND ".join(clauses) or "1 = 1"
        statement = self.inline(f"SELECT COUNT(*) FROM runs WHERE {condition}")
        return int(self._read(statement, params)[0][0])

    def queue_stats(self) -> list[tuple[str, str, int, float | None]]:
        now = self.now()  # once: durably_now() in SQLite is a call into Python per row
        rows = self._read(self.sql("queue_stats"), (now, now))
        return [(q, st, int(n), o) for q, st, n, o in rows]

    def history(self, run_id: str) -> list[tuple[float, str, dict[str, Any]]]:
        rows = self._read(self.sql("history"), (run_id,))
        return [(at, kind, json.loads(detail) if detail else {}) for at, kind, detail in rows]

    def fork_run(self, tx: Transaction, source_id: str, new: NewRun, upto: int) -> RunRow:
        row, created = self.create_run(tx, new)
        if not created:
            raise ValueError(f"run id {new.run_id!r} is taken")
        execute(tx, self.sql("fork_run"), (new.run_id, source_id, upto))
        self.add_history(tx, new.run_id, "forked", {"from": source_id, "position": upto})
        self.add_history(tx, source_id, "forked into", {"run": new.run_id, "position": upto})
        return row

    def acquire_lock(self, name: str, owner: str, ttl: float) -> bool:
        statement = self.sql("take_lock")
        return bool(self.transact(lambda tx: execute(tx, statement, (name, owner, ttl)).rowcount))

    def release_lock(self, name: str, owner: str) -> None:
        statement = self.sql("drop_lock")
        self.transact(lambda tx: execute(tx, statement, (name, owner)))

    def purge(self, cutoffs: Mapping[str, float], limit: int, dry_run: bool = False) -> int:
        if not cutoffs:
            return 0
        statuses = ",".join(f"'{RunStatus(s).value}'" for s in cutoffs)
        ages = " ".join(f"WHEN '{RunStatus(s).value}' THEN ?" for s in cutoffs)
        ages_params = list(cutoffs.values())

        def purge(tx: Transaction) -> int:
            statement = self.sql("purgeable_trees", statuses=statuses, ages=ages)
            params = (max(cutoffs.values()), *ages_params, *ages_params, limit)
            whole = [r[0] for r in execute(tx, statement, params).fetchall()]
            if not whole:
                return 0
            trees = placeholders(len(whole))
            # A tree: its root (by id) and the rest (the runs_root index leaves roots out).
            rest = f"root_id IN ({trees}) AND root_id <> run_id"
            members = f"SELECT run_id FROM runs WHERE {rest}"
            if dry_run:
                count = self.inline(f"SELECT COUNT(*) FROM ({members}) m")
                roots = self.inline(f"SELECT COUNT(*) FROM runs WHERE run_id IN ({trees})")
                found = execute(tx, count, whole).fetchone()[0]
                return int(found + execute(tx, roots, whole).fetchone()[0])
            for table in _TABLES_OF_A_RUN:
                for which in (members, trees):
                    sql = self.inline(f"DELETE FROM {table} WHERE run_id IN ({which})")
                    execute(tx, sql, whole)
            # What this transaction deleted: a sweeper beside it may have taken some first.
            gone = execute(tx, self.inline(f"DELETE FROM runs WHERE {rest}"), whole).rowcount
            roots = self.inline(f"DELETE FROM runs WHERE run_id IN ({trees})")
            return int(gone + execute(tx, roots, whole).rowcount)

        return int(self.transact(purge))

    def events(self, run_id: str) -> list[tuple[str, str | None, float]]:
        statement = self.inline(
            "SELECT key, value, updated_at FROM events WHERE run_id = ? ORDER BY key"
        )
        return [(k, v, at) for k, v, at in self._read(statement, (run_id,))]

    def running_counts(self) -> dict[str, int]:
        return {owner: int(n) for owner, n in self._read(self.sql("running_counts"))}

    # -- a test's virtual clock ------------------------------------------------------
    def idle_state(self, owner: str, workflows: Sequence[str]) -> tuple[int, float | None, float]:
        names = list(workflows) or [""]  # no workflow: nothing of theirs is ever due
        statement = self.sql("idle_state", workflows=placeholders(len(names)))
        held, due, fires, now = self._read(statement, (owner, owner, *names))[0]
        nexts = [float(t) for t in (due, fires) if t is not None]
        return int(held), min(nexts) if nexts else None, float(now)

    def follow_clock(self, offset: float | None) -> None:
        """Nothing here: a database without a clock of its own reads the store's."""

    def clock_moved(self, owner: str | None, seconds: float) -> None:
        def shift(tx: Transaction) -> None:
            self._move_clock(tx, seconds)
            if owner is not None:
                execute(tx, self.sql("shift_leases"), (seconds, owner))
                execute(tx, self.sql("shift_locks"), (seconds, owner))

        self.transact(shift)

    def _move_clock(self, tx: Transaction, seconds: float) -> None:
        """Move the database's own clock, where it keeps one."""

"""SQL of schedules: their rows, the due ones, the ticks they fired."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from durably.records import NewRun
from durably.schedules import ScheduleSpec
from durably.stores.base import Transaction
from durably.stores.sql.rows import SCHEDULE_COLUMNS
from durably.stores.sql.statements import execute, execute_many, placeholders
from durably.ticking import ScheduleRow, ScheduleState, Tick


@lru_cache(maxsize=65536)
def _spec(text: str) -> ScheduleSpec:
    """A stored spec, checked once per text (specs are immutable; a due pass reads many)."""
    return ScheduleSpec.from_json(json.loads(text))


def schedule_from_row(row: Sequence[Any]) -> ScheduleRow:
    spec = _spec(row[2])
    state = ScheduleState(
        paused=bool(row[3]),
        note=row[4],
        next_at=row[5],
        due_at=row[6],
        last_run=row[7],
        buffer=tuple(json.loads(row[8])) if row[8] else (),
        started=row[9],
        skipped=row[10],
        buffered=row[11],
        missed=row[12],
        origin=row[13],
    )
    return ScheduleRow(spec, state, created_at=row[14], updated_at=row[15])


def _tick(row: Sequence[Any]) -> Tick:
    return Tick(run_id=row[0], schedule_id=row[1], nominal=row[2], kind=row[3], fired_at=row[4])


def _state(state: ScheduleState) -> tuple[Any, ...]:
    return (
        int(state.paused),
        state.note,
        state.next_at,
        state.due_at,
        state.last_run,
        json.dumps(list(state.buffer)) if state.buffer else None,
        state.started,
        state.skipped,
        state.buffered,
        state.missed,
        state.origin,
    )


def _values(spec: ScheduleSpec, state: ScheduleState) -> tuple[Any, ...]:
    return (spec.workflow, json.dumps(spec.to_json(), separators=(",", ":")), *_state(state))


class ScheduleSql:
    """Mixed into :class:`~durably.stores.sql.store.SqlStore`."""

    if TYPE_CHECKING:  # provided by SqlStore

        def sql(self, name: str, **parts: str) -> str: ...
        def inline(self, statement: str) -> str: ...
        def _read(self, statement: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def insert_schedule(self, tx: Transaction, spec: ScheduleSpec, state: ScheduleState) -> bool:
        params = (spec.id, *_values(spec, state))
        return bool(execute(tx, self.sql("insert_schedule"), params).rowcount)

    def update_schedule(self, tx: Transaction, spec: ScheduleSpec, state: ScheduleState) -> None:
        execute(tx, self.sql("update_schedule"), (*_values(spec, state), spec.id))

    def save_states(self, tx: Transaction, states: Sequence[tuple[str, ScheduleState]]) -> None:
        rows = [(*_state(state), schedule_id) for schedule_id, state in states]
        if rows:
            execute_many(tx, self.sql("save_schedule_state"), rows)

    def create_runs(self, tx: Transaction, news: Sequence[NewRun]) -> None:
        if any(n.parent_id is not None or n.owner is not None for n in news):
            raise ValueError("create_runs makes pending runs with no parent and no owner")
        rows = [
            (
                n.run_id,
                n.workflow,
                n.input,
                n.queue,
                n.priority,
                n.idempotency_key,
                n.run_id,  # its own root
                n.partition_key,
                n.delay,
                n.trace,
            )
            for n in news
        ]
        if rows:
            execute_many(tx, self.sql("create_runs"), rows)

    def lock_schedule(self, tx: Transaction, schedule_id: str) -> ScheduleRow | None:
        row = execute(tx, self.sql("lock_schedule"), (schedule_id,)).fetchone()
        return None if row is None else schedule_from_row(row)

    def due_schedules(self, tx: Transaction, limit: int) -> list[ScheduleRow]:
        rows = execute(tx, self.sql("due_schedules"), (limit,)).fetchall()
        return [schedule_from_row(r) for r in rows]

    def delete_schedule(self, tx: Transaction, schedule_id: str) -> bool:
        statement = self.inline("DELETE FROM schedules WHERE schedule_id = ?")
        return bool(execute(tx, statement, (schedule_id,)).rowcount)

    def schedules(self, ids: Sequence[str] | None = None) -> list[ScheduleRow]:
        select = f"SELECT {SCHEDULE_COLUMNS} FROM schedules"
        if ids is None:
            rows = self._read(self.inline(f"{select} ORDER BY schedule_id"))
        else:
            where = f"WHERE schedule_id IN ({placeholders(len(ids)) if ids else 'NULL'})"
            rows = self._read(self.inline(f"{select} {where} ORDER BY schedule_id"), list(ids))
        return [schedule_from_row(r) for r in rows]

    def next_schedule_due(self) -> float | None:
        rows = self._read(self.sql("next_schedule_due"))
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    def add_ticks(self, tx: Transaction, ticks: Sequence[tuple[str, str, float, str]]) -> None:
        if ticks:
            execute_many(tx, self.sql("add_tick"), ticks)

    def ticks(self, schedule_id: str, limit: int) -> list[Tick]:
        return [_tick(r) for r in self._read(self.sql("recent_ticks"), (schedule_id, limit))]

    def announce_schedules(self, tx: Transaction) -> None:
        return None  # SQLite: schedulers poll (see worker/scheduler.POLL)

    def tick_of_run(self, run_id: str) -> Tick | None:
        rows = self._read(self.sql("tick_of_run"), (run_id,))
        return _tick(rows[0]) if rows else None

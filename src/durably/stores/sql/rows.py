"""Rows of the tables as records, and the SQL fragments every statement shares."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from durably.errors import ErrorInfo
from durably.records import EntryStatus, JournalEntry, RunRow, RunStatus, WorkerInfo

RUN_COLUMNS = (
    "run_id, workflow, status, input, output, error, current_step, queue, priority, "
    "idempotency_key, parent_id, attempts, epoch, owner, created_at, updated_at, "
    "cancel_requested, continued_to, partition_key, available_at, recoveries, lease_until, "
    "trace"
)
ENTRY_COLUMNS = (
    "seq, kind, name, status, output, error, attempts, started_at, finished_at, call_site"
)
ENDED = ", ".join(f"'{s.value}'" for s in RunStatus if s.terminal)
# A lease is ours while the epoch is unchanged, nobody else owns the row, and the run
# has not ended (an ended run takes no more writes, however stale the writer).
FENCE = f"run_id = ? AND epoch = ? AND (owner = ? OR owner IS NULL) AND status NOT IN ({ENDED})"

# Wake a run that may be waiting: runnable now if parked, else remembered for its next suspend.
WAKE = (
    "UPDATE runs SET wake_pending = 1, available_at = CASE WHEN owner IS NULL AND status IN "
    f"('{RunStatus.WAITING.value}') THEN durably_now() ELSE available_at END"
)

#: Fragments the statements in ``queries/*.sql`` name as ``{fence}``, ``{ended}`` ...
#: A schedule's row as :func:`durably.stores.sql.schedules.schedule_from_row` reads it.
SCHEDULE_COLUMNS = (
    "schedule_id, workflow, spec, paused, note, next_at, due_at, last_run, buffer, "
    "started, skipped, buffered, missed, origin, created_at, updated_at"
)
FRAGMENTS = {
    "run_columns": RUN_COLUMNS,
    "schedule_columns": SCHEDULE_COLUMNS,
    "entry_columns": ENTRY_COLUMNS,
    "ended": ENDED,
    "fence": FENCE,
    "wake": WAKE,
}


def error_text(error: ErrorInfo | None) -> str | None:
    return None if error is None else json.dumps(error.to_json())


def error_from_text(text: str | None) -> ErrorInfo | None:
    return None if text is None else ErrorInfo.from_json(json.loads(text))


def run_from_row(row: Sequence[Any]) -> RunRow:
    return RunRow(
        run_id=row[0],
        workflow=row[1],
        status=RunStatus(row[2]),
        input=row[3],
        output=row[4],
        error=error_from_text(row[5]),
        current_step=row[6],
        queue=row[7],
        priority=row[8],
        idempotency_key=row[9],
        parent_id=row[10],
        attempts=row[11],
        epoch=row[12],
        owner=row[13],
        created_at=row[14],
        updated_at=row[15],
        cancel_requested=bool(row[16]),
        continued_to=row[17],
        partition_key=row[18],
        available_at=row[19],
        recoveries=row[20],
        lease_until=row[21],
        trace=row[22],
    )


def entry_from_row(row: Sequence[Any]) -> JournalEntry:
    return JournalEntry(
        seq=row[0],
        kind=row[1],
        name=row[2],
        status=EntryStatus(row[3]),
        output=row[4],
        error=error_from_text(row[5]),
        attempts=row[6],
        started_at=row[7],
        finished_at=row[8],
        call_site=row[9] or "",
    )


def worker_from_row(row: Sequence[Any]) -> WorkerInfo:
    return WorkerInfo(
        worker_id=row[0],
        host=row[1],
        pid=row[2],
        queues=None if row[3] is None else tuple(json.loads(row[3])),
        workflows=tuple(json.loads(row[4])),
        lease=row[5],
        started_at=row[6],
        seen_at=row[7],
        concurrency=row[8],
        patterns=None if row[9] is None else tuple(json.loads(row[9])),
        versions=json.loads(row[10] or "{}"),
    )

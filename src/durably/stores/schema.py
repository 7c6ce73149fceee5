"""The schema (versioned migrations, one for both dialects) and row mapping."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from durably.errors import ErrorInfo
from durably.records import EntryStatus, JournalEntry, RunRow, RunStatus

RUN_COLUMNS = (
    "run_id, workflow, status, input, output, error, current_step, queue, priority, "
    "idempotency_key, parent_id, attempts, epoch, owner, created_at, updated_at, "
    "cancel_requested, continued_to, partition_key"
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
    f"('{RunStatus.WAITING.value}') THEN {{now}} "
    "ELSE available_at END"
)


MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        output TEXT,
        error TEXT,
        current_step TEXT,
        queue TEXT NOT NULL DEFAULT 'default',
        priority INTEGER NOT NULL DEFAULT 0,
        idempotency_key TEXT,
        parent_id TEXT,
        root_id TEXT,
        owner TEXT,
        epoch BIGINT NOT NULL DEFAULT 0,
        lease_until DOUBLE PRECISION,
        available_at DOUBLE PRECISION,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE UNIQUE INDEX runs_idempotency ON runs (idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX runs_ready ON runs (available_at) WHERE available_at IS NOT NULL;
    CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;
    CREATE INDEX runs_created ON runs (created_at);
    CREATE INDEX runs_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;
    CREATE TABLE journal (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        output TEXT,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 1,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        call_site TEXT,
        PRIMARY KEY (run_id, seq)
    ){without_rowid};
    """,
    """
    ALTER TABLE runs ADD COLUMN wake_pending INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN continued_to TEXT;
    CREATE TABLE signals (
        id {serial},
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        payload TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        consumed_seq INTEGER
    );
    CREATE INDEX signals_mailbox ON signals (run_id, name, id) WHERE consumed_seq IS NULL;
    CREATE TABLE events (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_id, key)
    );
    """,
    """
    ALTER TABLE runs ADD COLUMN partition_key TEXT;
    ALTER TABLE runs ADD COLUMN started_at DOUBLE PRECISION;
    CREATE INDEX runs_queue_started ON runs (queue, started_at) WHERE started_at IS NOT NULL;
    """,
    """
    ALTER TABLE signals ADD COLUMN send_key TEXT;
    CREATE UNIQUE INDEX signals_send_key ON signals (send_key) WHERE send_key IS NOT NULL;
    """,
)


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

-- Runs and their journals. The journal's table options are filled in per
-- dialect: SQLite clusters it by its key (WITHOUT ROWID).
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

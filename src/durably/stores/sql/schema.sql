-- The whole schema at its newest version, for a fresh install. Upgrades apply
-- migrations/*.sql instead; a test checks from the database catalog that both
-- give the same schema.
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
    updated_at DOUBLE PRECISION NOT NULL,
    wake_pending INTEGER NOT NULL DEFAULT 0,
    continued_to TEXT,
    partition_key TEXT,
    started_at DOUBLE PRECISION,
    recoveries INTEGER NOT NULL DEFAULT 0,
    progress INTEGER NOT NULL DEFAULT -1,
    orphaned INTEGER NOT NULL DEFAULT 0,
    claimed_from TEXT,
    trace TEXT
);
CREATE UNIQUE INDEX runs_idempotency ON runs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_ready ON runs (available_at) WHERE available_at IS NOT NULL;
CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX runs_queue_started ON runs (queue, started_at) WHERE started_at IS NOT NULL;
CREATE INDEX runs_status_created ON runs (status, created_at)
    WHERE status NOT IN ('running', 'completed');
CREATE INDEX runs_workflow_created ON runs (workflow, created_at);
CREATE INDEX runs_root ON runs (root_id) WHERE root_id <> run_id;

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

CREATE TABLE signals (
    id {serial},
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    payload TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    consumed_seq INTEGER,
    send_key TEXT
);
CREATE INDEX signals_mailbox ON signals (run_id, name, id) WHERE consumed_seq IS NULL;
CREATE UNIQUE INDEX signals_send_key ON signals (run_id, name, send_key)
    WHERE send_key IS NOT NULL;

CREATE TABLE events (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    queues TEXT,
    workflows TEXT NOT NULL,
    lease DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    concurrency INTEGER NOT NULL DEFAULT 0,
    patterns TEXT,
    versions TEXT
);

CREATE TABLE history (
    id {serial},
    run_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX history_run ON history (run_id, id);

CREATE TABLE locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until DOUBLE PRECISION NOT NULL
);

CREATE TABLE schedules (
    schedule_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    spec TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    next_at DOUBLE PRECISION,
    due_at DOUBLE PRECISION,
    last_run TEXT,
    buffer TEXT,
    started INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    buffered INTEGER NOT NULL DEFAULT 0,
    missed INTEGER NOT NULL DEFAULT 0,
    origin TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX schedules_due ON schedules (due_at) WHERE paused = 0;
CREATE TABLE ticks (
    run_id TEXT PRIMARY KEY,
    schedule_id TEXT NOT NULL,
    nominal DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    fired_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX ticks_schedule ON ticks (schedule_id, nominal);

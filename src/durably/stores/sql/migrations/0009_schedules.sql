-- Schedules and the ticks they fired. A schedule's row holds its spec (JSON) and
-- its state; the index on due_at is how every worker finds the due ones. A tick's
-- row names the run it started (the run's id is derived from the schedule and the
-- tick's nominal instant, so a tick starts one run however many workers race).
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

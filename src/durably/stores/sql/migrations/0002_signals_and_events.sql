-- Continue-as-new links, wake-ups for runs that execute, signals and events.
-- The signal id's type is filled in per dialect (an auto-incrementing key).
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

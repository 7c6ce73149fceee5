-- The lifecycle of runs beyond their journal (claims, suspensions, releases, failed
-- attempts, cancel requests, retries, forks), written off the hot path; where a
-- claimed run came from; what the live workers run; indexes for the filters of
-- `durably runs list` and for retention; the lease of a fleet's one retention sweeper.
-- The status and tree indexes leave out what most runs are (running or completed; a
-- root of its own tree), so the hot path of a run maintains neither.
CREATE TABLE history (
    id {serial},
    run_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX history_run ON history (run_id, id);
ALTER TABLE runs ADD COLUMN claimed_from TEXT;
ALTER TABLE workers ADD COLUMN concurrency INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN patterns TEXT;
ALTER TABLE workers ADD COLUMN versions TEXT;
CREATE INDEX runs_status_created ON runs (status, created_at)
    WHERE status NOT IN ('running', 'completed');
CREATE INDEX runs_workflow_created ON runs (workflow, created_at);
CREATE INDEX runs_root ON runs (root_id) WHERE root_id <> run_id;
CREATE TABLE locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until DOUBLE PRECISION NOT NULL
);

-- Recoveries: how many times in a row a run was taken back from a worker that died
-- while executing it, without progress (its journal's last position unchanged),
-- so that a run that kills its worker is failed instead of re-claimed forever.
-- Workers: the live executors, what they execute, when each was last seen.
ALTER TABLE runs ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN progress INTEGER NOT NULL DEFAULT -1;
ALTER TABLE runs ADD COLUMN orphaned INTEGER NOT NULL DEFAULT 0;
CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    queues TEXT,
    workflows TEXT NOT NULL,
    lease DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL
);

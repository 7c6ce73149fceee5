-- What operators ask of the store: history, forks, the retention sweeper's lease and
-- its purges, the workers' load.

-- name: history
SELECT at, kind, detail FROM history WHERE run_id = ? ORDER BY id

-- name: fork_run
-- The source's journal up to a position, under the new run's id.
INSERT INTO journal (run_id, seq, kind, name, status, output, error, attempts,
    started_at, finished_at, call_site)
SELECT ?, seq, kind, name, status, output, error, attempts, started_at, finished_at,
    call_site
FROM journal WHERE run_id = ? AND seq < ?

-- name: take_lock
-- Taken when free, expired, or held by the same owner already (a renewal).
INSERT INTO locks (name, owner, until) VALUES (?, ?, durably_now() + ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
WHERE locks.until < durably_now() OR locks.owner = excluded.owner

-- name: drop_lock
DELETE FROM locks WHERE name = ? AND owner = ?

-- name: purgeable_roots
-- Roots of trees that may be gone: ended, and created before the cutoff of their
-- status (a run ends after it is created, so this is a necessary condition).
SELECT DISTINCT root_id FROM runs
WHERE status IN ({statuses}) AND parent_id IS NULL AND created_at < ?
    AND updated_at < CASE status {ages} END
LIMIT ?

-- name: whole_trees
-- Of those roots, the trees whose every run has ended past the age of its status.
SELECT root_id FROM runs WHERE root_id IN ({roots})
GROUP BY root_id
HAVING SUM(CASE WHEN status IN ({statuses})
    AND updated_at < CASE status {ages} END THEN 0 ELSE 1 END) = 0

-- name: running_counts
SELECT owner, COUNT(*) FROM runs WHERE owner IS NOT NULL GROUP BY owner

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

-- name: purgeable_trees
-- Roots of trees whose every run (children, continue-as-new chain) has ended longer
-- ago than its status is kept. A tree with one run still live is passed over: it
-- never stops the trees behind it from going. A tree is found by its root (the run
-- whose root_id is its own id: no DISTINCT, so the scan stops at the limit), the
-- rest of it through the runs_root index, once per candidate. (A scalar subquery,
-- not NOT EXISTS: PostgreSQL would make that an anti-join over the whole table.)
SELECT r.run_id FROM runs r
WHERE r.root_id = r.run_id AND r.status IN ({statuses}) AND r.created_at < ?
    AND r.updated_at < CASE r.status {ages} END
    AND (
        SELECT 1 FROM runs m WHERE m.root_id = r.run_id AND m.root_id <> m.run_id
        AND NOT (m.status IN ({statuses}) AND m.updated_at < CASE m.status {ages} END)
        LIMIT 1
    ) IS NULL
LIMIT ?

-- name: running_counts
SELECT owner, COUNT(*) FROM runs WHERE owner IS NOT NULL GROUP BY owner

-- name: queue_stats
-- Runs not ended by queue and status; the earliest due time of those waiting for a
-- worker (due, no live lease). Now is given (read once, not once per row).
SELECT queue, status, COUNT(*), MIN(CASE WHEN available_at <= ?
        AND (owner IS NULL OR lease_until < ?) THEN available_at END)
FROM runs WHERE status NOT IN ({ended})
GROUP BY queue, status ORDER BY queue, status

-- name: idle_state
-- For a test's virtual clock: the runs one owner holds; the earliest moment another run
-- can be claimed (due, or its stranger's lease runs out) or a schedule fires; now.
SELECT (SELECT COUNT(*) FROM runs WHERE owner = ?),
    (SELECT MIN(CASE WHEN owner IS NULL OR lease_until < available_at THEN available_at
                ELSE lease_until END)
        FROM runs WHERE available_at IS NOT NULL AND (owner IS NULL OR owner <> ?)
        AND workflow IN ({workflows})),
    (SELECT MIN(due_at) FROM schedules WHERE paused = 0),
    durably_now()

-- name: shift_leases
UPDATE runs SET lease_until = lease_until + ? WHERE owner = ?

-- name: shift_locks
UPDATE locks SET until = until + ? WHERE owner = ?

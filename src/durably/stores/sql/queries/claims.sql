-- Claiming: runnable runs taken with a lease, within their queue's limits.

-- name: claim
-- {target} selects the runs to take: the first runnable ones, or ids chosen
-- within a queue's limits. A run taken from a worker that died executing it (its
-- lease expired, or its owner was found dead) with no new journal position since
-- it was last claimed counts one more recovery without progress.
UPDATE runs SET owner = ?, epoch = epoch + 1, lease_until = durably_now() + ?,
    status = 'running', attempts = attempts + 1, wake_pending = 0,
    updated_at = durably_now(), started_at = COALESCE(started_at, durably_now()),
    recoveries = CASE WHEN (owner IS NOT NULL OR orphaned = 1) AND progress = (
            SELECT COALESCE(MAX(seq), -1) FROM journal WHERE journal.run_id = runs.run_id)
        THEN recoveries + 1 ELSE 0 END,
    progress = (SELECT COALESCE(MAX(seq), -1) FROM journal WHERE journal.run_id = runs.run_id),
    claimed_from = CASE WHEN owner IS NOT NULL THEN owner
        WHEN orphaned = 1 THEN claimed_from END,
    orphaned = 0
WHERE {target}
RETURNING {run_columns}, claimed_from

-- name: runnable
SELECT run_id FROM runs WHERE {where}
ORDER BY priority DESC, available_at LIMIT ?{claim_lock}

-- name: executing_in_queue
SELECT COUNT(*) FROM runs
WHERE queue = ? AND owner IS NOT NULL AND lease_until >= durably_now()

-- name: started_in_queue
SELECT COUNT(*) FROM runs WHERE queue = ? AND started_at > durably_now() - ?

-- name: runnable_within_partitions
-- Candidates ranked within their partition: a rank past the partition's free
-- slots waits, so one claim never takes more of a key than it may run.
SELECT c.run_id FROM (
    SELECT run_id, partition_key, priority, available_at,
        ROW_NUMBER() OVER (PARTITION BY partition_key
            ORDER BY priority DESC, available_at) AS nth
    FROM runs WHERE {where}
) c LEFT JOIN (
    SELECT partition_key, COUNT(*) AS n FROM runs
    WHERE queue = ? AND partition_key IS NOT NULL
        AND owner IS NOT NULL AND lease_until >= durably_now()
    GROUP BY partition_key
) k ON k.partition_key = c.partition_key
WHERE c.partition_key IS NULL OR c.nth + COALESCE(k.n, 0) <= ?
ORDER BY c.priority DESC, c.available_at LIMIT ?

-- name: journals
SELECT run_id, {entry_columns} FROM journal WHERE run_id IN ({ids}) ORDER BY run_id, seq

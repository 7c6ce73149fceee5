-- Runs and their journals: creating, fencing, suspending, finishing, leases.

-- name: create_run
-- Claimed at once when an owner is given (the in-process fast path).
INSERT INTO runs (run_id, workflow, status, input, queue, priority,
    idempotency_key, parent_id, root_id, partition_key, owner, epoch, lease_until,
    available_at, attempts, started_at, trace, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?,
    COALESCE(?, (SELECT root_id FROM runs WHERE run_id = ?), ?), ?, ?, ?,
    durably_now() + ?, durably_now() + ?, ?,
    CASE WHEN ? THEN durably_now() END, ?, durably_now(), durably_now())
ON CONFLICT DO NOTHING

-- name: create_runs
-- Pending runs with no parent and no owner (a schedule's ticks), one per row.
INSERT INTO runs (run_id, workflow, status, input, queue, priority,
    idempotency_key, root_id, partition_key, epoch, available_at, attempts, trace,
    created_at, updated_at)
VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, 0, durably_now() + ?, 0, ?, durably_now(),
    durably_now())
ON CONFLICT DO NOTHING

-- name: existing_runs
SELECT {run_columns} FROM runs WHERE run_id = ? OR idempotency_key = ?

-- name: append_entry
-- Written only while the lease holds; a retried position overwrites its entry.
INSERT INTO journal (run_id, seq, kind, name, status, output, error, attempts,
    started_at, finished_at, call_site)
SELECT ?, ?, ?, ?, ?, CAST(? AS TEXT), CAST(? AS TEXT), ?,
    CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION), ?
WHERE EXISTS (SELECT 1 FROM runs WHERE {fence})
ON CONFLICT (run_id, seq) DO UPDATE SET status = excluded.status,
    output = excluded.output, error = excluded.error,
    attempts = excluded.attempts, finished_at = excluded.finished_at

-- name: set_progress
-- Only while running: a late progress write must not touch a run that moved on.
UPDATE runs SET current_step = ?, updated_at = durably_now()
WHERE {fence} AND status = 'running'

-- name: suspend_run
-- A cancel, or a wake-up for a wait (signal, child) that came while the run was
-- executing, makes it runnable at once instead of parking it.
UPDATE runs SET status = ?,
    available_at = CASE WHEN cancel_requested = 1 OR (wake_pending = 1 AND ?)
        THEN durably_now() ELSE ? END,
    wake_pending = 0, owner = NULL, lease_until = NULL, current_step = NULL,
    updated_at = durably_now()
WHERE {fence}

-- name: add_history
INSERT INTO history (run_id, at, kind, detail)
VALUES (?, COALESCE(CAST(? AS DOUBLE PRECISION), durably_now()), ?, ?)

-- name: finish_run
UPDATE runs SET status = ?, output = ?, error = ?, continued_to = ?,
    available_at = NULL, owner = NULL, lease_until = NULL, current_step = NULL,
    updated_at = durably_now()
WHERE {fence}

-- name: wake
{wake} WHERE run_id = ?

-- name: drop_failed_entries
DELETE FROM journal WHERE run_id = ? AND status = 'failed' AND seq IN ({seqs})

-- name: make_runnable
UPDATE runs SET status = 'pending', error = NULL, available_at = durably_now(),
    updated_at = durably_now(), recoveries = 0, orphaned = 0
WHERE run_id = ?

-- name: release_owner
-- Runs that were running become pending; parked ones keep their status and timer.
-- The runs of an owner that died are marked: their next claim is a recovery.
UPDATE runs SET owner = NULL, lease_until = NULL, epoch = epoch + 1,
    status = CASE WHEN status = 'running' THEN 'pending' ELSE status END,
    available_at = COALESCE(available_at, durably_now()),
    orphaned = CASE WHEN ? THEN 1 ELSE orphaned END,
    claimed_from = CASE WHEN ? THEN owner ELSE claimed_from END
WHERE owner = ?

-- name: history_of_release
INSERT INTO history (run_id, at, kind, detail)
SELECT run_id, durably_now(), 'released', ? FROM runs WHERE owner = ?

-- name: release_run
UPDATE runs SET owner = NULL, lease_until = NULL, epoch = epoch + 1,
    status = CASE WHEN status = 'running' THEN 'pending' ELSE status END,
    current_step = NULL, available_at = COALESCE(available_at, durably_now())
WHERE {fence}

-- name: renew_leases
UPDATE runs SET lease_until = durably_now() + ? WHERE owner = ? AND run_id IN ({ids})

-- name: next_wakeup
SELECT MIN(available_at) FROM runs
WHERE available_at IS NOT NULL AND owner IS NULL AND workflow IN ({workflows})

-- name: due_runs
-- What a worker may claim now (due, no live lease, not ended), longest due first: the
-- runs a transport's sweeper wakes.
SELECT run_id, workflow, queue, priority, available_at FROM runs
WHERE available_at <= durably_now() AND status NOT IN ({ended})
    AND (owner IS NULL OR lease_until < durably_now())
ORDER BY available_at LIMIT ?

-- name: register_worker
INSERT INTO workers
    (worker_id, host, pid, queues, workflows, lease, concurrency, patterns, versions,
    started_at, seen_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, durably_now(), durably_now())
ON CONFLICT (worker_id) DO UPDATE SET queues = excluded.queues,
    workflows = excluded.workflows, lease = excluded.lease,
    concurrency = excluded.concurrency, patterns = excluded.patterns,
    versions = excluded.versions, seen_at = excluded.seen_at

-- name: forget_stale_workers
-- Workers not seen for a day are gone for good: their rows would only grow the table.
DELETE FROM workers WHERE seen_at < durably_now() - 86400

-- name: touch_worker
UPDATE workers SET seen_at = durably_now() WHERE worker_id = ?

-- name: live_workers
-- Seen within two leases: a heartbeat renews every third of one.
SELECT worker_id, host, pid, queues, workflows, lease, started_at, seen_at, concurrency,
    patterns, versions
FROM workers WHERE seen_at + 2 * lease >= durably_now() ORDER BY started_at

-- name: waiting_kinds
-- What runs wait for a worker now: due, not held, not ended.
SELECT DISTINCT workflow, queue FROM runs
WHERE owner IS NULL AND status = 'pending' AND available_at <= ?
LIMIT ?

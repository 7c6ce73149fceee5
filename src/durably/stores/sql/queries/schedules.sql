-- Schedules: their rows, the due ones (locked by the worker that decides them, so
-- on PostgreSQL workers split the due schedules instead of waiting on each other),
-- and the ticks they fired.

-- name: insert_schedule
INSERT INTO schedules (schedule_id, workflow, spec, paused, note, next_at, due_at,
    last_run, buffer, started, skipped, buffered, missed, origin, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, durably_now(), durably_now())
ON CONFLICT (schedule_id) DO NOTHING

-- name: update_schedule
UPDATE schedules SET workflow = ?, spec = ?, paused = ?, note = ?, next_at = ?,
    due_at = ?, last_run = ?, buffer = ?, started = ?, skipped = ?, buffered = ?,
    missed = ?, origin = ?, updated_at = durably_now()
WHERE schedule_id = ?

-- name: save_schedule_state
-- A fired schedule's new state (its spec is as it was).
UPDATE schedules SET paused = ?, note = ?, next_at = ?, due_at = ?, last_run = ?,
    buffer = ?, started = ?, skipped = ?, buffered = ?, missed = ?, origin = ?,
    updated_at = durably_now()
WHERE schedule_id = ?

-- name: lock_schedule
SELECT {schedule_columns} FROM schedules WHERE schedule_id = ?{row_lock}

-- name: due_schedules
SELECT {schedule_columns} FROM schedules
WHERE paused = 0 AND due_at <= durably_now()
ORDER BY due_at LIMIT ?{claim_lock}

-- name: next_schedule_due
SELECT MIN(due_at) FROM schedules WHERE paused = 0

-- name: add_tick
INSERT INTO ticks (run_id, schedule_id, nominal, kind, fired_at)
VALUES (?, ?, ?, ?, durably_now())
ON CONFLICT (run_id) DO NOTHING

-- name: recent_ticks
SELECT run_id, schedule_id, nominal, kind, fired_at FROM ticks
WHERE schedule_id = ? ORDER BY nominal DESC LIMIT ?

-- name: tick_of_run
SELECT run_id, schedule_id, nominal, kind, fired_at FROM ticks WHERE run_id = ?

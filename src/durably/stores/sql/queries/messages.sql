-- What passes between runs and the outside: signals, events, cancellation.

-- name: queue_signal
INSERT INTO signals (run_id, name, payload, send_key, created_at)
VALUES (?, ?, ?, ?, durably_now()) ON CONFLICT DO NOTHING

-- name: next_signal
-- A signal this position consumed already wins: the transaction may be a retry
-- of one that committed although its caller was told it failed.
SELECT id, payload FROM signals
WHERE run_id = ? AND name = ? AND (consumed_seq IS NULL OR consumed_seq = ?)
ORDER BY consumed_seq IS NULL, id LIMIT 1

-- name: consume_signal
UPDATE signals SET consumed_seq = ? WHERE id = ?

-- name: publish_event
INSERT INTO events (run_id, key, value, updated_at) VALUES (?, ?, ?, durably_now())
ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value,
    updated_at = excluded.updated_at

-- name: cancel_tree
-- The run and all its descendants that have not ended; parked ones wake now.
WITH RECURSIVE tree(id) AS (
    SELECT CAST(? AS TEXT)
    UNION SELECT r.run_id FROM runs r JOIN tree ON r.parent_id = tree.id
)
UPDATE runs SET cancel_requested = 1, error = ?, updated_at = durably_now(),
    available_at = CASE WHEN owner IS NULL THEN durably_now() ELSE available_at END
WHERE run_id IN (SELECT id FROM tree) AND status NOT IN ({ended})

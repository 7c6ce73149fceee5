-- A signal's idempotency key is scoped to its run and name: the same key sent to
-- two runs (or under two names) is two signals.
DROP INDEX signals_send_key;
CREATE UNIQUE INDEX signals_send_key ON signals (run_id, name, send_key)
    WHERE send_key IS NOT NULL;

-- Idempotent signal sends.
ALTER TABLE signals ADD COLUMN send_key TEXT;
CREATE UNIQUE INDEX signals_send_key ON signals (send_key) WHERE send_key IS NOT NULL;

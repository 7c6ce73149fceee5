-- Partition keys and start times (queue rate and partition limits).
ALTER TABLE runs ADD COLUMN partition_key TEXT;
ALTER TABLE runs ADD COLUMN started_at DOUBLE PRECISION;
CREATE INDEX runs_queue_started ON runs (queue, started_at) WHERE started_at IS NOT NULL;

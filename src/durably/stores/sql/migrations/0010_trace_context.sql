-- A trace context stored with each run when it starts (what a tracing hook gives),
-- read back by the worker that executes it.
ALTER TABLE runs ADD COLUMN trace TEXT;

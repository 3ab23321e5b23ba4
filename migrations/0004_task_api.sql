-- What the task API stores beside the engine's columns. Added to the partitioned table, so both partitions get them;
-- constant defaults, so no existing row is rewritten.

-- The last progress a handler reported: {"fraction": 0..1, "message": text or null, "at": ISO time}, or NULL.
ALTER TABLE tasks ADD COLUMN progress jsonb;

-- Every failed attempt's error, oldest first, bounded by the writer: [{"type", "message", "stack", "attempt",
-- "workerId", "at"}]. `error` keeps the last one's text as before.
ALTER TABLE tasks ADD COLUMN errors jsonb NOT NULL DEFAULT '[]';

-- What the user attaches to a task (a request id, a tenant, a link): a JSON object set at enqueue and updated by the
-- handler through taskContext().setMeta().
ALTER TABLE tasks ADD COLUMN meta jsonb NOT NULL DEFAULT '{}';

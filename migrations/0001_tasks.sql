-- The tasks table. Runs with search_path set to the skiplock schema, inside one transaction.

CREATE TABLE tasks (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name             text NOT NULL,
  args             jsonb NOT NULL DEFAULT '[]',
  queue            text NOT NULL DEFAULT 'default',
  priority         integer NOT NULL DEFAULT 0,
  status           text NOT NULL DEFAULT 'PENDING'
                   CHECK (status IN ('PENDING', 'PROGRESS', 'COMPLETED', 'FAILED', 'CANCELLED')),
  result           jsonb,
  error            text,
  -- retries taken so far, and allowed
  retry_count      integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
  -- NULL until a worker claims the task: then the worker's default (`--retry`) is written in
  max_retries      integer CHECK (max_retries >= 0),
  -- seconds one attempt may run
  timeout          double precision NOT NULL DEFAULT 300 CHECK (timeout > 0),
  run_at           timestamptz NOT NULL DEFAULT now(),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  finished_at      timestamptz,
  -- seconds from the last start to the finish
  duration         double precision,
  -- attempts started, counted at claim time; with worker_id it is the lease every transition compares and sets
  attempt          integer NOT NULL DEFAULT 0,
  worker_id        text,
  heartbeat_at     timestamptz,
  unique_key       text,
  cancel_requested boolean NOT NULL DEFAULT false
);

-- The claim query walks this index in its ORDER BY order; it holds only claimable rows, so finished rows never
-- slow the claim down however many accumulate.
CREATE INDEX tasks_claim_idx ON tasks (queue, priority DESC, run_at, id) WHERE status = 'PENDING';

-- Running rows, oldest heartbeat first: the stale-task sweep reads only these.
CREATE INDEX tasks_running_idx ON tasks (heartbeat_at) WHERE status = 'PROGRESS';

-- A unique key holds while its task is live; once it finishes the key may be used again.
CREATE UNIQUE INDEX tasks_unique_key_idx ON tasks (unique_key)
  WHERE unique_key IS NOT NULL AND status IN ('PENDING', 'PROGRESS');

-- The worker registry: one row per worker process, for the dashboard and `listWorkers()`. Written by the worker
-- itself: inserted at start, refreshed by its heartbeat thread once per heartbeat interval (one primary-key UPDATE,
-- never per task), stamped `stopped_at` at a clean stop. A row whose last_seen_at is older than its own stale_after
-- is a lost worker. Rows stopped or lost for a day are deleted when a worker starts (rows are only ever added at a
-- start, so that bounds the table). See docs/architecture.md, The worker registry.
CREATE TABLE workers (
  -- the worker's id, as written into tasks.worker_id by its claims
  id                 text PRIMARY KEY,
  host               text NOT NULL,
  pid                integer NOT NULL,
  queues             text[] NOT NULL,
  concurrency        integer NOT NULL,
  -- the names of the schedules this worker declared (it runs their ticks)
  schedules          text[] NOT NULL DEFAULT '{}',
  version            text NOT NULL,
  -- seconds, as the worker was configured: how often this row is refreshed, and after how long without it is lost
  heartbeat_interval double precision NOT NULL,
  stale_after        double precision NOT NULL,
  -- tasks running at the last refresh
  running            integer NOT NULL DEFAULT 0,
  started_at         timestamptz NOT NULL DEFAULT now(),
  last_seen_at       timestamptz NOT NULL DEFAULT now(),
  stopped_at         timestamptz
);

-- Throughput and failures per minute over the last hour (the dashboard's api/stats) read finished rows by
-- finished_at. A BRIN index, not a btree: tasks_done takes every completion, and a btree there costs each one an index
-- insert (0005 measured btrees on tasks_done slowing completions 1.5–2 times); a BRIN entry summarizes 32 pages. Rows
-- arrive in tasks_done about in finished_at order, so the last hour is a narrow tail of page ranges. With 1,000,000
-- finished rows over 10 hours, the last hour's counts took 81 ms reading 1,700 buffers, against 243 ms and 16,000 for a
-- scan. `autosummarize`: without it the ranges filled since the last VACUUM are unsummarized, which BRIN returns as
-- matches, and the query read the whole table through the index (285 ms). 300,000-row inserts into tasks_done took
-- 0.98–1.48 s with it and 0.86–1.17 s without, on a machine at load 7.5: within that noise.
CREATE INDEX tasks_done_finished_brin ON tasks_done USING brin (finished_at)
  WITH (pages_per_range = 32, autosummarize = on);

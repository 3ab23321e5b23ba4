-- Schedules: cron definitions reconciled from the workers' code, and the key that makes each tick one task.
-- See docs/architecture.md, Schedules.

CREATE TABLE schedules (
  name         text PRIMARY KEY,
  cron         text NOT NULL,
  -- IANA name; the cron's fields are read in this zone
  timezone     text NOT NULL,
  -- what each tick enqueues
  task         text NOT NULL,
  args         jsonb NOT NULL DEFAULT '[]',
  queue        text NOT NULL,
  priority     integer NOT NULL DEFAULT 0,
  timeout      double precision NOT NULL CHECK (timeout > 0),
  max_retries  integer CHECK (max_retries >= 0),
  -- seconds before now within which a worker coming back enqueues the ticks no worker was there for
  backfill     double precision NOT NULL DEFAULT 0 CHECK (backfill >= 0),
  -- The tick sequence's cursor: only ticks after it are enqueued. It moves to each tick enqueued, and to now() when
  -- the schedule is created, its cron or timezone changes, it is resumed, or it comes back after removal: none of
  -- those backfills what came before. It never moves back.
  ticks_after  timestamptz NOT NULL DEFAULT now(),
  last_tick    timestamptz,
  last_task_id bigint,
  next_tick    timestamptz,
  paused       boolean NOT NULL DEFAULT false,
  -- set when a worker that declares schedules started without this one: it enqueues nothing until declared again
  removed_at   timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per (schedule, tick) enqueued, inserted in the same statement as the task: a second insert for the tick
-- does nothing. Older rows of a schedule are deleted as each new tick goes in (the cursor above already refuses
-- them), so the table holds about one row per schedule.
CREATE TABLE schedule_ticks (
  schedule    text NOT NULL,
  tick        timestamptz NOT NULL,
  enqueued_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (schedule, tick)
);

-- Which schedule and tick a task was enqueued for (taskContext().schedule); NULL for every other task.
ALTER TABLE tasks ADD COLUMN schedule_name text;
ALTER TABLE tasks ADD COLUMN schedule_tick timestamptz;

import { perTable, run, type Queryable } from "../db/statements.js";

/*
 * What a scheduler reads at each wake-up: the database's clock (every "is it due" is decided by it, never by a
 * worker's clock) and the stored state of its schedules, one primary-key lookup each. The LEFT JOIN returns now()
 * even when none of them is stored. See docs/architecture.md, Schedules.
 */
const readState = perTable(
  "schedule_state",
  (schema) => `SELECT n.now, s.name, s.cron, s.timezone, s.paused, s.removed_at, s.ticks_after, s.next_tick
     FROM (SELECT now() AS now) n
     LEFT JOIN ${schema}.schedules s ON s.name = ANY ($1::text[])`,
);

export interface ScheduleState {
  name: string;
  cron: string;
  timezone: string;
  paused: boolean;
  removed_at: Date | null;
  ticks_after: Date;
  next_tick: Date | null;
}

/** The database's now() and the stored state of the schedules named (those that are stored). */
export async function readScheduleState(
  q: Queryable,
  schema: string,
  names: readonly string[],
): Promise<{ now: Date; states: Map<string, ScheduleState> }> {
  const { rows } = await run<ScheduleState & { now: Date }>(q, readState(schema), [names]);
  const states = new Map<string, ScheduleState>();
  for (const r of rows) if (r.name !== null) states.set(r.name, r);
  return { now: rows[0]!.now, states };
}

/*
 * One tick, one statement, so one transaction. The schedule's row is locked and must still match the caller's
 * definition (cron, timezone), be neither paused nor removed, have its cursor (ticks_after) before the tick, and the
 * tick must be due by the database's clock. A process that waited for the lock re-reads the row as the winner left
 * it (READ COMMITTED re-checks the WHERE on the new version) and finds the cursor at the tick: it inserts nothing.
 * The (schedule, tick) key is the second guard: its insert does nothing for a tick already there. The task is
 * inserted only for a tick key this statement inserted, the cursor moves to the tick, and the schedule's older tick
 * keys are deleted (the cursor refuses their ticks already), so the key table stays at about one row per schedule.
 */
const enqueueTick = perTable(
  "schedule_tick",
  (schema) => `WITH s AS MATERIALIZED (
     SELECT name, task, args, queue, priority, timeout, max_retries FROM ${schema}.schedules
      WHERE name = $1 AND cron = $2 AND timezone = $3 AND NOT paused AND removed_at IS NULL
        AND ticks_after < $4 AND $4 <= now()
        FOR UPDATE
   ), tick AS (
     INSERT INTO ${schema}.schedule_ticks (schedule, tick) SELECT name, $4 FROM s
     ON CONFLICT DO NOTHING
     RETURNING schedule, tick
   ), task AS (
     INSERT INTO ${schema}.tasks (name, args, queue, priority, timeout, max_retries, schedule_name, schedule_tick)
     SELECT s.task, s.args, s.queue, s.priority, s.timeout, s.max_retries, tick.schedule, tick.tick FROM s, tick
     RETURNING id, queue
   ), moved AS (
     UPDATE ${schema}.schedules
        SET ticks_after = $4, last_tick = $4, last_task_id = (SELECT id FROM task), next_tick = $5, updated_at = now()
      WHERE name = $1 AND EXISTS (SELECT FROM tick)
   ), pruned AS (
     DELETE FROM ${schema}.schedule_ticks WHERE schedule = $1 AND tick < $4 AND EXISTS (SELECT FROM tick)
   )
   SELECT id::text AS id, queue FROM task`,
);

export interface TickParams {
  name: string;
  cron: string;
  timezone: string;
  tick: Date;
  /** The tick after this one, stored as the schedule's next tick. */
  next: Date | null;
}

/** Enqueues the tick's task unless it is enqueued already (or not due, or the schedule paused, removed, changed). */
export async function enqueueScheduleTick(
  q: Queryable,
  schema: string,
  p: TickParams,
): Promise<{ id: string; queue: string } | null> {
  const { rows } = await run<{ id: string; queue: string }>(q, enqueueTick(schema), [
    p.name,
    p.cron,
    p.timezone,
    p.tick,
    p.next,
  ]);
  return rows[0] ?? null;
}

/* The next tick shown by `skiplock schedules`, when no tick was due to set it (start, resume, a new definition). */
const storeNextTick = perTable(
  "schedule_next",
  (schema) => `UPDATE ${schema}.schedules SET next_tick = $4
    WHERE name = $1 AND cron = $2 AND timezone = $3 AND NOT paused AND removed_at IS NULL
      AND next_tick IS DISTINCT FROM $4`,
);

export async function storeScheduleNextTick(q: Queryable, schema: string, p: Omit<TickParams, "tick">): Promise<void> {
  await run(q, storeNextTick(schema), [p.name, p.cron, p.timezone, p.next]);
}

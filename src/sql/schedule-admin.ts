import type { Queryable } from "../db/statements.js";
import { TASK_COLUMNS, type JsonValue, type TaskRow } from "../task.js";

/** A stored schedule (`skiplock schedules`, `client.listSchedules()`). Times in seconds, as in the tasks table. */
export interface ScheduleInfo {
  name: string;
  cron: string;
  timezone: string;
  task: string;
  args: JsonValue[];
  queue: string;
  priority: number;
  timeout: number;
  maxRetries: number | null;
  backfill: number;
  /** The last tick enqueued, or null before the first. */
  lastTick: Date | null;
  /** The task the last tick enqueued. */
  lastTaskId: string | null;
  /** When the next tick is due, as the workers running it computed it; null while paused or removed. */
  nextTick: Date | null;
  paused: boolean;
  /** Set when a worker declaring schedules started without this one; it enqueues nothing until declared again. */
  removedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

interface ScheduleRow {
  name: string;
  cron: string;
  timezone: string;
  task: string;
  args: JsonValue[];
  queue: string;
  priority: number;
  timeout: number;
  max_retries: number | null;
  backfill: number;
  last_tick: Date | null;
  last_task_id: string | null;
  next_tick: Date | null;
  paused: boolean;
  removed_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `name, cron, timezone, task, args, queue, priority, timeout, max_retries, backfill, last_tick,
  last_task_id::text AS last_task_id, next_tick, paused, removed_at, created_at, updated_at`;

function toInfo(r: ScheduleRow): ScheduleInfo {
  return {
    name: r.name,
    cron: r.cron,
    timezone: r.timezone,
    task: r.task,
    args: r.args,
    queue: r.queue,
    priority: r.priority,
    timeout: r.timeout,
    maxRetries: r.max_retries,
    backfill: r.backfill,
    lastTick: r.last_tick,
    lastTaskId: r.last_task_id,
    nextTick: r.next_tick,
    paused: r.paused,
    removedAt: r.removed_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Every stored schedule, by name. */
export async function listSchedules(q: Queryable, schema: string): Promise<ScheduleInfo[]> {
  const { rows } = await q.query<ScheduleRow>({ text: `SELECT ${COLUMNS} FROM ${schema}.schedules ORDER BY name` });
  return rows.map(toInfo);
}

/** Pauses the schedule: no tick is enqueued until it is resumed. Null when there is no such schedule. */
export async function pauseSchedule(q: Queryable, schema: string, name: string): Promise<ScheduleInfo | null> {
  const { rows } = await q.query<ScheduleRow>({
    text: `UPDATE ${schema}.schedules SET paused = true, next_tick = NULL, updated_at = now()
            WHERE name = $1 RETURNING ${COLUMNS}`,
    values: [name],
  });
  return rows[0] ? toInfo(rows[0]) : null;
}

/*
 * Resuming moves the cursor to now(), so the ticks of the paused period are never backfilled; resuming a schedule
 * that is not paused changes nothing (moving its cursor could skip a tick a worker is about to enqueue).
 */
export async function resumeSchedule(q: Queryable, schema: string, name: string): Promise<ScheduleInfo | null> {
  const { rows } = await q.query<ScheduleRow>({
    text: `UPDATE ${schema}.schedules
              SET ticks_after = CASE WHEN paused THEN greatest(ticks_after, now()) ELSE ticks_after END,
                  paused = false, updated_at = now()
            WHERE name = $1 RETURNING ${COLUMNS}`,
    values: [name],
  });
  return rows[0] ? toInfo(rows[0]) : null;
}

/*
 * A trigger enqueues the schedule's task once, now, outside the tick sequence: no tick key, the cursor and last tick
 * stay. Its task's schedule tick is the moment of the trigger. Paused or removed schedules can be triggered too.
 */
export async function triggerSchedule(q: Queryable, schema: string, name: string): Promise<TaskRow | null> {
  const { rows } = await q.query<TaskRow>({
    text: `INSERT INTO ${schema}.tasks (name, args, queue, priority, timeout, max_retries, schedule_name, schedule_tick)
           SELECT task, args, queue, priority, timeout, max_retries, name, now() FROM ${schema}.schedules WHERE name = $1
           RETURNING ${TASK_COLUMNS}`,
    values: [name],
  });
  return rows[0] ?? null;
}

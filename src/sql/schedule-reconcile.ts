import type pg from "pg";

/** A declared schedule as the table stores it. */
export interface StoredScheduleSpec {
  name: string;
  cron: string;
  timezone: string;
  task: string;
  argsJson: string;
  queue: string;
  priority: number;
  timeout: number;
  maxRetries: number | null;
  backfill: number;
}

/*
 * Brings the table in line with a worker's declared schedules, in one transaction under an advisory lock keyed by the
 * schema (workers starting together reconcile one after the other, so their row locks never cross). A new schedule's
 * cursor starts at now(); a changed cron or timezone, or a schedule declared again after its removal, moves the
 * cursor to now() too: it starts from the new expression without a burst of backfill. Other fields (args, queue, …)
 * apply from the next tick. Stored schedules this worker does not declare are marked removed: the tick statement
 * refuses them until some worker declares them again.
 */
const upsert = (schema: string) => `WITH d AS (
     SELECT * FROM jsonb_to_recordset($1::jsonb) AS d(name text, cron text, timezone text, task text, args jsonb,
            queue text, priority int, timeout float8, max_retries int, backfill float8)
      ORDER BY name
   ), up AS (
     INSERT INTO ${schema}.schedules AS s (name, cron, timezone, task, args, queue, priority, timeout, max_retries, backfill)
     SELECT name, cron, timezone, task, args, queue, priority, timeout, max_retries, backfill FROM d
     ON CONFLICT (name) DO UPDATE SET
        ticks_after = CASE WHEN s.cron <> excluded.cron OR s.timezone <> excluded.timezone OR s.removed_at IS NOT NULL
                           THEN greatest(s.ticks_after, now()) ELSE s.ticks_after END,
        next_tick = CASE WHEN s.cron <> excluded.cron OR s.timezone <> excluded.timezone THEN NULL ELSE s.next_tick END,
        cron = excluded.cron, timezone = excluded.timezone, task = excluded.task, args = excluded.args,
        queue = excluded.queue, priority = excluded.priority, timeout = excluded.timeout,
        max_retries = excluded.max_retries, backfill = excluded.backfill, removed_at = NULL, updated_at = now()
      WHERE (s.cron, s.timezone, s.task, s.args, s.queue, s.priority, s.timeout, s.max_retries, s.backfill)
            IS DISTINCT FROM (excluded.cron, excluded.timezone, excluded.task, excluded.args, excluded.queue,
                              excluded.priority, excluded.timeout, excluded.max_retries, excluded.backfill)
         OR s.removed_at IS NOT NULL
     RETURNING name
   )
   UPDATE ${schema}.schedules SET removed_at = now(), next_tick = NULL, updated_at = now()
    WHERE removed_at IS NULL AND name NOT IN (SELECT name FROM d)
   RETURNING name`;

/** Reconciles the stored schedules with `declared`; returns the names it marked removed. */
export async function reconcileSchedules(
  pool: pg.Pool,
  schema: string,
  schemaName: string,
  declared: readonly StoredScheduleSpec[],
): Promise<string[]> {
  const json = JSON.stringify(
    declared.map((s) => ({
      name: s.name,
      cron: s.cron,
      timezone: s.timezone,
      task: s.task,
      args: JSON.parse(s.argsJson) as unknown,
      queue: s.queue,
      priority: s.priority,
      timeout: s.timeout,
      max_retries: s.maxRetries,
      backfill: s.backfill,
    })),
  );
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock(hashtext('skiplock.schedules'), hashtext($1))", [schemaName]);
    const { rows } = await client.query<{ name: string }>(upsert(schema), [json]);
    await client.query("COMMIT");
    return rows.map((r) => r.name).sort();
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

import { perTable, run, type Queryable } from "../db/statements.js";
import { finished } from "./live.js";

/*
 * What the dashboard's overview reads besides countTasks. Both are read at most once per refresh of its cache (see
 * dashboard/stats.ts), never per request.
 */

/*
 * Finished tasks per minute over the last hour. `finished(t)` prunes to tasks_done, and the BRIN index on finished_at
 * (migration 0008) limits the read to the page ranges holding the last hour, a tail of the partition since rows arrive
 * there about in finished_at order; completions pay no btree insert for it.
 */
const perMinuteStatement = perTable(
  "stats_per_minute",
  (tasks) => `SELECT floor(extract(epoch FROM date_trunc('minute', t.finished_at)))::float8 AS minute,
       count(*) FILTER (WHERE t.status = 'COMPLETED')::int AS completed,
       count(*) FILTER (WHERE t.status = 'FAILED')::int AS failed,
       floor(extract(epoch FROM date_trunc('minute', now())))::float8 AS now
  FROM ${tasks} t
 WHERE ${finished("t")} AND t.finished_at >= date_trunc('minute', now()) - interval '59 minutes'
 GROUP BY 1`,
);

export interface MinuteCounts {
  /** The minute's start. */
  at: Date;
  completed: number;
  failed: number;
}

/** Sixty minutes, oldest first, the last being the current (partial) minute; minutes without finished tasks count 0. */
export async function finishedPerMinute(q: Queryable, tasks: string): Promise<MinuteCounts[]> {
  const { rows } = await run<{ minute: number; completed: number; failed: number; now: number }>(
    q,
    perMinuteStatement(tasks),
    [],
  );
  const byMinute = new Map(rows.map((r) => [r.minute, r]));
  // Without a finished row, the database's minute is unknown here: the local clock's stands in.
  const now = rows[0]?.now ?? Math.floor(Date.now() / 60_000) * 60;
  const out: MinuteCounts[] = [];
  for (let i = 59; i >= 0; i--) {
    const minute = now - i * 60;
    const r = byMinute.get(minute);
    out.push({ at: new Date(minute * 1000), completed: r?.completed ?? 0, failed: r?.failed ?? 0 });
  }
  return out;
}

/*
 * Per queue, how long its oldest due PENDING task has waited. `status = 'PENDING'` matches the claim index's
 * predicate, so this reads that index (queue first) rather than the table; it still reads every pending entry, which
 * is why the dashboard caches it.
 */
const oldestDueStatement = perTable(
  "stats_oldest_due",
  (tasks) => `SELECT t.queue, extract(epoch FROM now() - min(t.run_at))::float8 AS age
  FROM ${tasks} t
 WHERE t.status = 'PENDING' AND t.run_at <= now()
 GROUP BY t.queue`,
);

/** Seconds the oldest due task of each queue has waited, for the queues that have one due. */
export async function oldestDueByQueue(q: Queryable, tasks: string): Promise<{ [queue: string]: number }> {
  const { rows } = await run<{ queue: string; age: number }>(q, oldestDueStatement(tasks), []);
  return Object.fromEntries(rows.map((r) => [r.queue, r.age]));
}

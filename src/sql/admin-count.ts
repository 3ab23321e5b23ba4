import { perTable, run, type Queryable } from "../db/statements.js";
import type { TaskStatus } from "../task.js";
import { finished, live } from "./live.js";

/*
 * Counts per queue and status without counting a million finished rows on every call (290 ms; 100,000 of them took
 * 60–90 ms on a busy machine). tasks_live holds the work in flight, so its counts are exact. tasks_done is counted
 * exactly while it holds at most `cap` rows (the inner LIMIT bounds the work whatever its size), and not tried when
 * its statistics put it well past the cap; beyond that FAILED and CANCELLED are still counted exactly (up to `cap`) from
 * tasks_done_unsuccessful_idx, an index-only scan of the few rows in it, and COMPLETED is estimated from the
 * planner's statistics of tasks_done, which autovacuum keeps: its row count scaled to the partition's current size,
 * and each queue's share of it.
 */
const liveCounts = perTable(
  "admin_count_live",
  (tasks) => `SELECT t.queue, t.status, count(*)::float8 AS n FROM ${tasks} t WHERE ${live("t")} GROUP BY 1, 2`,
);

const finishedCounts = perTable(
  "admin_count_done",
  (tasks) => `SELECT s.queue, s.status, count(*)::float8 AS n
     FROM (SELECT t.queue, t.status FROM ${tasks} t WHERE ${finished("t")} LIMIT $1) s
    GROUP BY 1, 2`,
);

const unsuccessfulCounts = perTable(
  "admin_count_unsuccessful",
  (tasks) => `SELECT s.queue, s.status, count(*)::float8 AS n
     FROM (SELECT t.queue, t.status FROM ${tasks} t WHERE t.status IN ('FAILED', 'CANCELLED') LIMIT $1) s
    GROUP BY 1, 2`,
);

/*
 * The partition's estimated rows now: reltuples per page (as of the last VACUUM or ANALYZE) times its pages now, as
 * the planner scales it; null before the partition was ever analyzed. With the most common values of queue and
 * status and their frequencies from the same ANALYZE.
 */
const finishedStatistics = perTable(
  "admin_count_stats",
  (tasks) => `SELECT r.rows, s.attname::text AS column, s.most_common_vals::text::text[] AS vals,
          s.most_common_freqs AS freqs
     FROM (SELECT CASE WHEN c.reltuples < 0 OR c.relpages = 0 THEN NULL
                       ELSE c.reltuples / c.relpages
                            * (pg_relation_size(c.oid) / current_setting('block_size')::float8) END AS rows
             FROM pg_class c WHERE c.oid = '${tasks}_done'::regclass) r
     LEFT JOIN pg_stats s
       ON s.schemaname = $1 AND s.tablename = 'tasks_done' AND s.attname IN ('queue', 'status')`,
);

export interface CountRow {
  queue: string;
  status: TaskStatus;
  n: number;
}

export function countLiveTasks(q: Queryable, tasks: string): Promise<CountRow[]> {
  return run<CountRow>(q, liveCounts(tasks), []).then((r) => r.rows);
}

/** Counts of finished tasks, or null when there are more than `cap` (null: no cap, count them all). */
export async function countFinishedTasks(q: Queryable, tasks: string, cap: number | null): Promise<CountRow[] | null> {
  const { rows } = await run<CountRow>(q, finishedCounts(tasks), [cap === null ? null : cap + 1]);
  return cap !== null && rows.reduce((sum, r) => sum + r.n, 0) > cap ? null : rows;
}

/** Counts of FAILED and CANCELLED tasks, or null when there are more than `cap`. */
export async function countUnsuccessfulTasks(q: Queryable, tasks: string, cap: number): Promise<CountRow[] | null> {
  const { rows } = await run<CountRow>(q, unsuccessfulCounts(tasks), [cap + 1]);
  return rows.reduce((sum, r) => sum + r.n, 0) > cap ? null : rows;
}

export interface FinishedStatistics {
  /** Estimated rows in tasks_done now. */
  rows: number;
  /** Share of those rows per queue, and per status. */
  queues: Map<string, number>;
  statuses: Map<string, number>;
}

/**
 * The planner's statistics of tasks_done in `schema` (the schema of `tasks`), or null when it has none yet (never
 * analyzed). pg_stats is filtered by name: joined to pg_class instead, it read every table's statistics (39 ms
 * against 2 ms in a database of many schemas).
 */
export async function finishedStatisticsOf(
  q: Queryable,
  tasks: string,
  schema: string,
): Promise<FinishedStatistics | null> {
  const { rows } = await run<{ rows: number | null; column: string | null; vals: string[] | null; freqs: number[] }>(
    q,
    finishedStatistics(tasks),
    [schema],
  );
  const total = rows[0]?.rows;
  if (total === null || total === undefined) return null;
  const shares = (column: string): Map<string, number> | null => {
    const r = rows.find((x) => x.column === column);
    return r?.vals ? new Map(r.vals.map((v, i) => [v, r.freqs[i]!])) : null;
  };
  const queues = shares("queue");
  const statuses = shares("status");
  return queues && statuses ? { rows: total, queues, statuses } : null;
}

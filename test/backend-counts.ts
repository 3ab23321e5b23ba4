// Counting a database's Postgres backends per application_name while work runs: how many connections each skiplock
// piece holds (a worker names its pool and claim connection `skiplock worker <id>`, its heartbeat thread's
// `skiplock heartbeat <id>`; a client and a dashboard `skiplock client`).
import type pg from "pg";
import type { Proc } from "./helpers.js";

/** Postgres keeps the first 63 bytes of an application_name. */
const shown = (name: string) => name.slice(0, 63);

export type Seen = Map<string, number>;

/**
 * Backends of `pool`'s database per application_name, other than unnamed ones (the test's own pool, a fixture
 * task's ledger pool).
 */
export async function backends(pool: pg.Pool): Promise<Seen> {
  const r = await pool.query<{ name: string; n: number }>(
    `SELECT application_name AS name, count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND backend_type = 'client backend' AND application_name <> ''
      GROUP BY 1`,
  );
  return new Map(r.rows.map((row) => [row.name, row.n]));
}

/** A worker's backends: its pool, its claim connection and its heartbeat thread's, whichever it has. */
export const ofWorker = (id: string) => (seen: Seen) =>
  (seen.get(shown(`skiplock worker ${id}`)) ?? 0) + (seen.get(shown(`skiplock heartbeat ${id}`)) ?? 0);

/** Samples backends() until `work` settles: the most each `count` saw at once, and how many samples were taken. */
export async function peakWhile<K extends string>(
  pool: pg.Pool,
  work: Promise<unknown>,
  counts: Record<K, (seen: Seen) => number>,
): Promise<{ peak: Record<K, number>; samples: number }> {
  const keys = Object.keys(counts) as K[];
  const peak = Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
  let done = false;
  let samples = 0;
  const settled = work.finally(() => (done = true));
  while (!done) {
    const seen = await backends(pool);
    samples++;
    for (const k of keys) peak[k] = Math.max(peak[k], counts[k](seen));
  }
  await settled;
  return { peak, samples };
}

/** The id a run-worker process reported at start. */
export async function workerId(p: Proc): Promise<string> {
  return ((await p.waitForEvent("worker:started")).data as { workerId: string }).workerId;
}

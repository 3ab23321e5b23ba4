import { perTable, run, type Queryable } from "../db/statements.js";
import { finished } from "./live.js";

/*
 * Retention walks tasks_done in primary-key order, $2 rows a step, deleting the old-enough rows of each step in the
 * same statement: short transactions, and no index on finished_at for every completion to maintain. The DELETE
 * re-checks status and age. $1 last id seen, $3 statuses, $4 cutoff age in seconds, $5 dry run (count only).
 * See docs/architecture.md, Retention.
 */
const purgeStep = perTable(
  "purge",
  (tasks) => `WITH step AS MATERIALIZED (
     SELECT id, status, finished_at FROM ${tasks} t WHERE t.id > $1::bigint AND ${finished("t")} ORDER BY t.id LIMIT $2
   ), doomed AS MATERIALIZED (
     SELECT id FROM step
      WHERE status = ANY($3::text[]) AND finished_at < now() - $4::float8 * interval '1 second'
   ), deleted AS (
     DELETE FROM ${tasks} t USING doomed
      WHERE NOT $5::bool AND t.id = doomed.id AND ${finished("t")}
        AND t.status = ANY($3::text[]) AND t.finished_at < now() - $4::float8 * interval '1 second'
     RETURNING 1
   )
   SELECT (SELECT max(id) FROM step)::text AS last_id,
          (SELECT count(*) FROM step)::int AS scanned,
          CASE WHEN $5::bool THEN (SELECT count(*) FROM doomed) ELSE (SELECT count(*) FROM deleted) END::int AS matched`,
);

export interface PurgeOptions {
  /** Finished statuses to delete. */
  statuses: string[];
  /** Delete rows finished more than this many seconds ago. */
  olderThan: number;
  /** Rows read per step (each step is one short transaction). */
  batchSize: number;
  /** Count what would be deleted, delete nothing. */
  dryRun: boolean;
  /** Called after each step with the running total. */
  onProgress?: (matched: number, scanned: number) => void;
}

/** Returns how many rows were deleted (or, with dryRun, would be). */
export async function purgeTasks(
  q: Queryable,
  tasks: string,
  o: PurgeOptions,
): Promise<{ matched: number; scanned: number }> {
  let lastId = "0";
  let matched = 0;
  let scanned = 0;
  for (;;) {
    const { rows } = await run<{ last_id: string | null; scanned: number; matched: number }>(q, purgeStep(tasks), [
      lastId,
      o.batchSize,
      o.statuses,
      o.olderThan,
      o.dryRun,
    ]);
    const r = rows[0]!;
    matched += r.matched;
    scanned += r.scanned;
    o.onProgress?.(matched, scanned);
    if (r.last_id === null || r.scanned < o.batchSize) return { matched, scanned };
    lastId = r.last_id;
  }
}

import { perTable, run, type Queryable } from "../db/statements.js";
import type { Claim, StoredProgress } from "../task.js";
import { held } from "./lease.js";
import { live } from "./live.js";

/*
 * What running handlers reported (taskContext().progress / setMeta), throttled to about one write a second per task
 * and batched across tasks by worker/reports.ts. Each row is a compare-and-set on the lease through `held`, so a report
 * that arrives after the outcome, or for an attempt that moved on, changes nothing. A JSON null leaves that column as
 * it is; meta is merged key by key at the top level. `at` is the database's clock, like every other time on the row.
 * The batch travels as arrays and two JSON arrays zipped by ROWS FROM, as completions do (finish.ts).
 */
const reportStatement = perTable(
  "report",
  (tasks) => `WITH d AS MATERIALIZED (
     SELECT * FROM ROWS FROM (unnest($1::bigint[]), unnest($2::int[]), jsonb_array_elements($3::jsonb),
                              jsonb_array_elements($4::jsonb))
         AS d(id, attempt, progress, meta)
   ), ${held(tasks, "$5")}
   UPDATE ${tasks} t
      SET progress = CASE WHEN jsonb_typeof(h.progress) = 'object'
                          THEN h.progress || jsonb_build_object('at', now()) ELSE t.progress END,
          meta = CASE WHEN jsonb_typeof(h.meta) = 'object' THEN t.meta || h.meta ELSE t.meta END,
          updated_at = now()
     FROM held h
    WHERE t.id = h.id AND ${live("t")}
   RETURNING t.id::text AS id, CASE WHEN jsonb_typeof(h.progress) = 'object' THEN t.progress END AS progress`,
  { prepared: false },
);

export interface Report extends Claim {
  /** JSON text of `{ fraction, message }`, or "null" to leave progress as it is. */
  progressJson: string;
  /** JSON text of the top-level keys to merge into meta, or "null". */
  metaJson: string;
}

/** Writes the reports; returns, by id, the rows changed, with the progress stored when this write set it. */
export async function writeReports(
  q: Queryable,
  tasks: string,
  workerId: string,
  items: readonly Report[],
): Promise<Map<string, StoredProgress | null>> {
  if (items.length === 0) return new Map();
  const { rows } = await run<{ id: string; progress: StoredProgress | null }>(q, reportStatement(tasks), [
    items.map((r) => r.id),
    items.map((r) => r.attempt),
    `[${items.map((r) => r.progressJson).join(",")}]`,
    `[${items.map((r) => r.metaJson).join(",")}]`,
    workerId,
  ]);
  return new Map(rows.map((r) => [r.id, r.progress]));
}

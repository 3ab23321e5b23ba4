import { perTable, run, type Queryable } from "../db/statements.js";
import type { Claim } from "../task.js";
import { held } from "./lease.js";
import { live } from "./live.js";

/*
 * Records that claimed tasks (claimed with started_at NULL) have started; until then a crash hands them back
 * uncharged (sweep.ts). Sent with the next outcome batch and not awaited, since a round trip before each start would
 * cost the drain what the prefetch gains; skipped for a task whose outcome is in that batch. Awaited before the
 * handler only for a task once handed back unstarted, which may be what kills its workers. See
 * docs/architecture.md, Prefetch.
 */
const startStatement = perTable(
  "start",
  (tasks) => `WITH d AS MATERIALIZED (
     SELECT * FROM unnest($1::bigint[], $2::int[]) AS d(id, attempt)
   ), ${held(tasks, "$3", { skipLocked: true })}
   UPDATE ${tasks} t
      SET started_at = now()
    WHERE t.id = ANY (ARRAY(SELECT id FROM held)) AND ${live("t")} AND t.started_at IS NULL`,
  { prepared: false },
);

/** Returns how many of the starts were recorded (a lease that moved on records none). */
export async function recordStarts(
  q: Queryable,
  tasks: string,
  workerId: string,
  items: readonly Claim[],
): Promise<number> {
  if (items.length === 0) return 0;
  const { rowCount } = await run(q, startStatement(tasks), [
    items.map((i) => i.id),
    items.map((i) => i.attempt),
    workerId,
  ]);
  return rowCount ?? 0;
}

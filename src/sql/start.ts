import { perTable, run, type Queryable } from "../db/statements.js";
import type { Claim } from "../task.js";
import { held } from "./lease.js";
import { live } from "./live.js";

/*
 * Records that the handlers of prefetched tasks (claimed with started_at NULL, see claim.ts) have started. Until
 * this commits, a worker that dies hands such a task back without charging it a retry (sweep.ts). The worker does
 * not wait for it before starting a handler: it is written with the next outcome batch, and not at all for a task
 * whose outcome is in that batch (the outcome records the start). Compare-and-set on the lease like every outcome.
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

export async function recordStarts(
  q: Queryable,
  tasks: string,
  workerId: string,
  items: readonly Claim[],
): Promise<void> {
  if (items.length === 0) return;
  await run(q, startStatement(tasks), [items.map((i) => i.id), items.map((i) => i.attempt), workerId]);
}

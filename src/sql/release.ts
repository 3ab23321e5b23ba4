import { perTable, run, type Queryable } from "../db/store.js";
import type { Claim } from "../task.js";
import { held } from "./lease.js";
import { live } from "./live.js";

/*
 * Graceful shutdown hands unfinished tasks back: PENDING again, due now, retry_count unchanged (the attempt was
 * interrupted, not failed). Compare-and-set on the lease (PROGRESS, attempt, worker_id) like every outcome (see
 * finish.ts).
 */
const releaseStatement = perTable(
  "release",
  (tasks) => `WITH d AS MATERIALIZED (
     SELECT * FROM unnest($1::bigint[], $2::int[]) AS d(id, attempt)
   ), ${held(tasks, "$3")}
   UPDATE ${tasks} t
      SET status = 'PENDING', run_at = now(), heartbeat_at = NULL, updated_at = now()
    WHERE t.id = ANY (ARRAY(SELECT id FROM held)) AND ${live("t")}
   RETURNING t.id`,
  { prepared: false },
);

export async function releaseTasks(
  q: Queryable,
  tasks: string,
  workerId: string,
  items: readonly Claim[],
): Promise<string[]> {
  if (items.length === 0) return [];
  const { rows } = await run<{ id: string }>(q, releaseStatement(tasks), [
    items.map((i) => i.id),
    items.map((i) => i.attempt),
    workerId,
  ]);
  return rows.map((r) => r.id);
}

import { perTable, run, type Queryable } from "../db/statements.js";
import type { TaskRow } from "../task.js";
import { live } from "./live.js";

/*
 * Cancelling is compare-and-set on the status: only a PENDING task becomes CANCELLED, so a task a worker claimed a
 * moment before is left to run and report its own outcome. The row is found and locked by its primary key alone,
 * behind OFFSET 0, and its status checked once locked: given `status = 'PENDING'`, the planner may walk the claim
 * index instead, whenever its statistics say few tasks wait, and then read the whole backlog (see lease.ts).
 */
const cancelStatement = perTable(
  "cancel",
  (tasks) => `WITH target AS MATERIALIZED (
     SELECT t.id, t.status FROM ${tasks} t
      WHERE t.id = $1 AND ${live("t")}
     OFFSET 0
        FOR UPDATE
   )
   UPDATE ${tasks} t SET status = 'CANCELLED', finished_at = now(), updated_at = now()
     FROM target
    WHERE t.id = target.id AND ${live("t")} AND target.status = 'PENDING'
   RETURNING t.*`,
);

/** Cancels task `id` if it is PENDING and returns its row as it is now; null if it was not PENDING or not a task. */
export async function cancelPendingTask(q: Queryable, tasks: string, id: string): Promise<TaskRow | null> {
  const { rows } = await run<TaskRow>(q, cancelStatement(tasks), [id]);
  return rows[0] ?? null;
}

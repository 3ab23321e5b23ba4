import { perTable, run, type Queryable } from "../db/statements.js";
import type { TaskRow } from "../task.js";

/*
 * Cancelling is compare-and-set on the status: only a PENDING task becomes CANCELLED, so a task a worker claimed
 * a moment before is left to run and report its own outcome. The row moves to the finished tasks' partition.
 */
const cancelStatement = perTable(
  "cancel",
  (tasks) => `UPDATE ${tasks} SET status = 'CANCELLED', finished_at = now(), updated_at = now()
    WHERE id = $1 AND status = 'PENDING'
    RETURNING *`,
);

/** Cancels task `id` if it is PENDING and returns its row as it is now; null if it was not PENDING or not a task. */
export async function cancelPendingTask(q: Queryable, tasks: string, id: string): Promise<TaskRow | null> {
  const { rows } = await run<TaskRow>(q, cancelStatement(tasks), [id]);
  return rows[0] ?? null;
}

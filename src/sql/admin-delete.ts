import { perTable, run, type Queryable } from "../db/statements.js";
import { TASK_COLUMNS, type TaskRow } from "../task.js";
import type { Expectation } from "../task-expectation.js";
import { expected } from "./admin-state.js";
import { finished } from "./live.js";

/*
 * Deletes one finished task. The status condition prunes to tasks_done and is checked on the row deleted, so a task
 * that went back to PENDING meanwhile (a retry) is kept: its row moved to tasks_live, the DELETE fails with 40001
 * and `run` runs it again, which then finds nothing to delete.
 */
const deleteStatement = perTable(
  "admin_delete",
  (tasks) =>
    `DELETE FROM ${tasks} t WHERE t.id = $1 AND ${finished("t")} AND ${expected("t", 2)} RETURNING ${TASK_COLUMNS}`,
);

/**
 * Deletes task `id` if it is COMPLETED, FAILED or CANCELLED (and as `expect` says) and returns it as it was; null
 * otherwise.
 */
export async function deleteFinishedTask(
  q: Queryable,
  tasks: string,
  id: string,
  expect?: Expectation,
): Promise<TaskRow | null> {
  const { rows } = await run<TaskRow>(q, deleteStatement(tasks), [id, expect?.status ?? null, expect?.attempt ?? null]);
  return rows[0] ?? null;
}

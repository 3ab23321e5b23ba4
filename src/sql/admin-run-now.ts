import { perTable, run, type Queryable } from "../db/statements.js";
import type { TaskRow } from "../task.js";
import type { Expectation } from "../task-expectation.js";
import { expected } from "./admin-state.js";
import { live } from "./live.js";

/*
 * A PENDING task becomes due now. run_at only moves earlier: a task already due keeps its place in the claim order
 * (priority, run_at, id) instead of going behind the tasks that came due since. Found and locked by primary key
 * behind OFFSET 0 and checked once locked, as cancel.ts does: given `status = 'PENDING'` the planner may walk the
 * claim index instead. A task a worker claimed meanwhile is PROGRESS once locked and is left alone.
 */
const runNowStatement = perTable(
  "admin_run_now",
  (tasks) => `WITH target AS MATERIALIZED (
     SELECT t.id, t.status, t.attempt, t.run_at FROM ${tasks} t
      WHERE t.id = $1 AND ${live("t")}
     OFFSET 0
        FOR UPDATE
   )
   UPDATE ${tasks} t SET run_at = least(t.run_at, now()), updated_at = now()
     FROM target
    WHERE t.id = target.id AND ${live("t")} AND target.status = 'PENDING' AND ${expected("target", 2)}
   RETURNING t.*, target.run_at > now() AS was_future`,
);

/** Makes PENDING task `id` due now; null when it was not PENDING (or not a task, or not as `expect` says). */
export async function runPendingTaskNow(
  q: Queryable,
  tasks: string,
  id: string,
  expect?: Expectation,
): Promise<(TaskRow & { was_future: boolean }) | null> {
  const { rows } = await run<TaskRow & { was_future: boolean }>(q, runNowStatement(tasks), [
    id,
    expect?.status ?? null,
    expect?.attempt ?? null,
  ]);
  return rows[0] ?? null;
}

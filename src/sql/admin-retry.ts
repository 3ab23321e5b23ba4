import { perTable, run, type Queryable } from "../db/statements.js";
import { TASK_COLUMNS, type TaskRow } from "../task.js";
import type { Expectation } from "../task-expectation.js";
import { expected } from "./admin-state.js";
import { live } from "./live.js";

/*
 * A FAILED or CANCELLED task goes back to PENDING, due now, with its history (attempt, error, errors, worker_id)
 * kept. The status condition prunes the UPDATE to tasks_done and is re-checked on the row it locks, so a task that
 * changed meanwhile is left alone; a row moved to tasks_live under it fails with 40001 and `run` runs the statement
 * again (moved-rows.js), which then finds nothing to retry.
 *
 * retry_count: a failed attempt that ended the task was charged (attempt counts it) but no retry followed, so
 * retry_count is one behind the PENDING shape the sweep and the worker rely on (attempt - retry_count = the claims
 * handed back uncharged; see sweep.ts, worker/attempts.ts). Counting the manual retry restores that shape and gives
 * the task one more attempt when its retries were spent (as BullMQ's job.retry), or its remaining ones when a
 * PermanentError or retryOn ended it early. A task cancelled while PENDING already has that shape and keeps its count;
 * one cancelled while running (cancel_requested) is counted like a failure.
 *
 * A unique key held by a newer live task would collide in tasks_live's unique index: the row is left alone and the
 * caller reads who holds the key (admin-state.ts). A retried task holds its key again (unique_superseded is cleared:
 * a task whose key a "replace" handed on while it ran takes it back once nobody holds it). A concurrent enqueue can still take the key between the check and
 * the move; the move then fails with 23505 and the caller tries again.
 */
const retryStatement = perTable(
  "admin_retry",
  (tasks) => `UPDATE ${tasks} t
      SET status = 'PENDING', run_at = now(), finished_at = NULL, updated_at = now(), heartbeat_at = NULL,
          retry_count = t.retry_count + (t.status = 'FAILED' OR t.cancel_requested)::int,
          cancel_requested = false, progress = NULL, unique_superseded = false
    WHERE t.id = $1 AND t.status IN ('FAILED', 'CANCELLED') AND ${expected("t", 2)}
      AND (t.unique_key IS NULL
           OR NOT EXISTS (SELECT FROM ${tasks} h
                           WHERE h.unique_key = t.unique_key AND NOT h.unique_superseded AND ${live("h")}))
   RETURNING ${TASK_COLUMNS}`,
);

/**
 * Moves task `id` from FAILED or CANCELLED to PENDING, due now; null when it was in neither (or not as `expect`
 * says, or its key is held).
 */
export async function retryFinishedTask(
  q: Queryable,
  tasks: string,
  id: string,
  expect?: Expectation,
): Promise<TaskRow | null> {
  const { rows } = await run<TaskRow>(q, retryStatement(tasks), [id, expect?.status ?? null, expect?.attempt ?? null]);
  return rows[0] ?? null;
}

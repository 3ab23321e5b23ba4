import { perTable, run, type Queryable } from "../db/store.js";

/*
 * The stale-task sweep. A PROGRESS task whose heartbeat is older than $1 seconds belongs to a worker that died,
 * froze or lost its connection. It goes back to PENDING, due now, with retry_count + 1 while retries are left, and
 * to FAILED otherwise; either way its error says the worker was lost.
 *
 * The candidates are locked with SKIP LOCKED in a MATERIALIZED CTE, so two sweepers racing on the same rows split
 * them rather than both moving one. The UPDATE then re-checks status, heartbeat age and attempt in its own WHERE:
 * a task that completed, got a fresh heartbeat, or was re-claimed since the candidate was read is left alone (a
 * sweep that matched on id alone would overwrite a task that had just finished). Batches of $2 keep each
 * transaction short.
 */
const sweepStatement = perTable(
  "sweep",
  (tasks) => `WITH stale AS MATERIALIZED (
     SELECT id, attempt FROM ${tasks}
      WHERE status = 'PROGRESS' AND heartbeat_at < now() - $1::float8 * interval '1 second'
      ORDER BY heartbeat_at
      LIMIT $2
      FOR UPDATE SKIP LOCKED
   )
   UPDATE ${tasks} t
      SET status = CASE WHEN t.retry_count < coalesce(t.max_retries, 0) THEN 'PENDING' ELSE 'FAILED' END,
          retry_count = t.retry_count + (t.retry_count < coalesce(t.max_retries, 0))::int,
          run_at = now(),
          finished_at = CASE WHEN t.retry_count < coalesce(t.max_retries, 0) THEN NULL ELSE now() END,
          error = 'worker lost: no heartbeat from worker ' || coalesce(t.worker_id, '?') || ' for over ' || $1::float8 || ' s',
          updated_at = now()
     FROM stale
    WHERE t.id = stale.id AND t.attempt = stale.attempt
      AND t.status = 'PROGRESS' AND t.heartbeat_at < now() - $1::float8 * interval '1 second'
   RETURNING t.id, t.status, t.name, t.queue, t.worker_id, t.attempt`,
);

export interface SweptTask {
  id: string;
  status: "PENDING" | "FAILED";
  name: string;
  queue: string;
  worker_id: string | null;
  attempt: number;
}

export async function sweepStaleTasks(
  q: Queryable,
  tasks: string,
  staleAfter: number,
  batchSize = 1000,
): Promise<SweptTask[]> {
  const { rows } = await run<SweptTask>(q, sweepStatement(tasks), [staleAfter, batchSize]);
  return rows;
}

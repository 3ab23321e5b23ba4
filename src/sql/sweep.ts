import { perTable, run, type Queryable } from "../db/statements.js";

/*
 * The stale-task sweep. A PROGRESS task whose heartbeat is older than $1 seconds belongs to a worker that died,
 * froze or lost its connection. A task whose handler started is charged the attempt: PENDING with retry_count + 1
 * while retries are left, FAILED otherwise, its error saying the worker was lost. A task that was only prefetched
 * (started_at NULL: claimed into a buffer, its start never recorded) goes back to PENDING uncharged, its error
 * untouched: it never ran, so the crash was not its doing. A handler that kills its worker at once leaves no start
 * record either, so after $3 uncharged hand-backs (attempt counts every claim, retry_count the charged ones) a task
 * is charged all the same: a poison task still reaches its retry limit. Either way run_at is kept, so the task
 * goes back to the head of its queue instead of behind every task enqueued while it was held.
 *
 * Time Postgres was down does not count: a row is judged only once the server has been up for $1 seconds, so a
 * worker that could not beat during an outage has that long, after the restart, to beat again (and write the
 * outcomes it held) before anything of its is judged.
 *
 * The candidates are locked with SKIP LOCKED in a MATERIALIZED CTE, so two sweepers racing on the same rows split
 * them rather than both moving one. The UPDATE then re-checks status, heartbeat age and attempt in its own WHERE:
 * a task that completed, got a fresh heartbeat, or was re-claimed since the candidate was read is left alone (a
 * sweep that matched on id alone would overwrite a task that had just finished). Batches of $2 keep each
 * transaction short.
 */
const CHARGED = "(t.started_at IS NOT NULL OR t.attempt - t.retry_count > $3)";
const RETRY = `(NOT ${CHARGED} OR t.retry_count < coalesce(t.max_retries, 0))`;
const sweepStatement = perTable(
  "sweep",
  (tasks) => `WITH stale AS MATERIALIZED (
     SELECT id, attempt FROM ${tasks}
      WHERE status = 'PROGRESS' AND heartbeat_at < now() - $1::float8 * interval '1 second'
        AND pg_postmaster_start_time() < now() - $1::float8 * interval '1 second'
      ORDER BY heartbeat_at
      LIMIT $2
      FOR UPDATE SKIP LOCKED
   )
   UPDATE ${tasks} t
      SET status = CASE WHEN ${RETRY} THEN 'PENDING' ELSE 'FAILED' END,
          retry_count = t.retry_count + (${CHARGED} AND t.retry_count < coalesce(t.max_retries, 0))::int,
          finished_at = CASE WHEN ${RETRY} THEN NULL ELSE now() END,
          error = CASE WHEN ${CHARGED}
                       THEN 'WorkerLostError: worker lost: no heartbeat from worker ' || coalesce(t.worker_id, '?') || ' for over ' || $1::float8 || ' s'
                       ELSE t.error END,
          updated_at = now()
     FROM stale
    WHERE t.id = stale.id AND t.attempt = stale.attempt
      AND t.status = 'PROGRESS' AND t.heartbeat_at < now() - $1::float8 * interval '1 second'
   RETURNING t.id, t.status, t.name, t.queue, t.worker_id, t.attempt, ${CHARGED} AS charged`,
);

/**
 * Uncharged hand-backs of a prefetched task before a sweep charges it anyway (see above). A task lands in a buffer
 * that dies with its worker only when the worker is killed before starting it; several in a row means it is most
 * likely the task that kills them.
 */
export const MAX_UNCHARGED_SWEEPS = 5;

export interface SweptTask {
  id: string;
  status: "PENDING" | "FAILED";
  name: string;
  queue: string;
  worker_id: string | null;
  attempt: number;
  /** False for a prefetched task handed back without being charged an attempt. */
  charged: boolean;
}

export async function sweepStaleTasks(
  q: Queryable,
  tasks: string,
  staleAfter: number,
  batchSize = 1000,
): Promise<SweptTask[]> {
  const { rows } = await run<SweptTask>(q, sweepStatement(tasks), [staleAfter, batchSize, MAX_UNCHARGED_SWEEPS]);
  return rows;
}

import { perTable, run, type Queryable } from "../db/statements.js";
import { appendError, errorEntry } from "./errors-column.js";

/*
 * A PROGRESS row whose heartbeat is older than $1 seconds lost its worker. A started task is charged (a retry, or
 * FAILED with "worker lost", and an `errors` entry: errors-column.ts); a prefetched one (started_at NULL) goes back
 * uncharged, unless it has gone back uncharged $3 times already, so a poison task still reaches its retry limit.
 * run_at is kept. No row is judged until the server has been up $1 seconds. Candidates are locked SKIP LOCKED in a
 * MATERIALIZED CTE, batches of $2, and the UPDATE re-checks status, heartbeat age and attempt, so a task that
 * finished, beat or was re-claimed meanwhile is left alone. A task whose cancel was requested ends CANCELLED instead of running again. See
 * docs/architecture.md, Heartbeats and the sweep.
 */
const CHARGED = "(t.started_at IS NOT NULL OR t.attempt - t.retry_count > $3)";
const RETRY = `(NOT ${CHARGED} OR t.retry_count < coalesce(t.max_retries, 0))`;
const LOST = `'worker lost: no heartbeat from worker ' || coalesce(t.worker_id, '?') || ' for over ' || $1::float8 || ' s'`;
const LOST_ENTRY = errorEntry({
  type: "'WorkerLostError'",
  message: LOST,
  text: "NULL::text",
  attempt: "t.attempt",
  workerId: "t.worker_id",
});
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
      SET status = CASE WHEN t.cancel_requested THEN 'CANCELLED' WHEN ${RETRY} THEN 'PENDING' ELSE 'FAILED' END,
          retry_count = t.retry_count + (${CHARGED} AND NOT t.cancel_requested AND t.retry_count < coalesce(t.max_retries, 0))::int,
          finished_at = CASE WHEN ${RETRY} AND NOT t.cancel_requested THEN NULL ELSE now() END,
          error = CASE WHEN ${CHARGED} THEN 'WorkerLostError: ' || ${LOST} ELSE t.error END,
          errors = CASE WHEN ${CHARGED} THEN ${appendError("t.errors", LOST_ENTRY)} ELSE t.errors END,
          updated_at = now()
     FROM stale
    WHERE t.id = stale.id AND t.attempt = stale.attempt
      AND t.status = 'PROGRESS' AND t.heartbeat_at < now() - $1::float8 * interval '1 second'
   RETURNING t.id, t.status, t.name, t.queue, t.worker_id, t.attempt, ${CHARGED} AS charged`,
);

/**
 * Uncharged hand-backs of a prefetched task before a sweep charges it anyway: several in a row mean it is most
 * likely the task that kills its workers.
 */
export const MAX_UNCHARGED_SWEEPS = 5;

export interface SweptTask {
  id: string;
  status: "PENDING" | "FAILED" | "CANCELLED";
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

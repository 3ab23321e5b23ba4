import { perTable, run, type Queryable } from "../db/statements.js";
import type { ClaimedRow } from "./claim.js";
import { live } from "./live.js";

/*
 * Claims one named task, whatever its run_at, if it is PENDING (and on one of the given queues): the dashboard's
 * `api/execute/:id`. It takes the same lease as claimTasks (attempt + 1, worker_id, heartbeat_at), so the heartbeat,
 * outcomes and the sweep treat it like any claimed task. The row is found and locked by primary key behind OFFSET 0
 * and its status checked once locked, as cancel.ts and admin-run-now.ts do: a claim racing this one waits, then
 * finds the row PROGRESS and this statement changes nothing. Not on a hot path; one primary-key probe.
 */
const claimByIdStatement = perTable(
  "claim_by_id",
  (tasks) => `WITH target AS MATERIALIZED (
     SELECT t.id, t.status, t.queue FROM ${tasks} t
      WHERE t.id = $1 AND ${live("t")}
     OFFSET 0
        FOR UPDATE
   )
   UPDATE ${tasks} t
      SET status = 'PROGRESS', attempt = t.attempt + 1, worker_id = $2, started_at = NULL, heartbeat_at = now(),
          updated_at = now(), max_retries = coalesce(t.max_retries, $3)
     FROM target
    WHERE t.id = target.id AND ${live("t")} AND target.status = 'PENDING'
      AND ($4::text[] IS NULL OR target.queue = ANY ($4::text[]))
   RETURNING t.id, t.name, t.args, t.queue, t.attempt, t.retry_count, t.max_retries, t.timeout, t.schedule_name,
             t.schedule_tick`,
);

export interface ClaimByIdParams {
  id: string;
  workerId: string;
  defaultMaxRetries: number;
  /** Claim it only from these queues; null: any queue. */
  queues: readonly string[] | null;
}

/** The claimed row, or null when the task is not PENDING (or not a task, or on another queue). */
export async function claimTaskById(q: Queryable, tasks: string, p: ClaimByIdParams): Promise<ClaimedRow | null> {
  const { rows } = await run<ClaimedRow>(q, claimByIdStatement(tasks), [
    p.id,
    p.workerId,
    p.defaultMaxRetries,
    p.queues === null ? null : [...p.queues],
  ]);
  return rows[0] ?? null;
}

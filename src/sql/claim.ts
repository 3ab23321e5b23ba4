import { perTable, run, type Queryable } from "../db/store.js";
import { TASK_COLUMNS, type TaskRow } from "../task.js";

/*
 * The claim. The CTE is MATERIALIZED so it is an optimization fence: Postgres must first pick at most $2 ids
 * (locking them with SKIP LOCKED, so concurrent workers never wait on each other or take the same row) and only
 * then update exactly those; without the fence the planner may fold the subquery into a join and lock or update
 * more rows than the LIMIT. The SELECT walks tasks_claim_idx (queue, priority DESC, run_at, id) WHERE PENDING in
 * order, so it reads only claimable rows however many finished rows the table holds.
 *
 * attempt is counted here, at claim time, so a task that kills its worker still uses up its retries; together with
 * worker_id it is the lease that every later transition of this attempt compares against. max_retries is fixed
 * here from the worker's default when the task was enqueued without one.
 */
const claimStatement = perTable(
  "claim",
  (tasks) => `WITH picked AS MATERIALIZED (
     SELECT id FROM ${tasks}
      WHERE status = 'PENDING' AND queue = ANY($1::text[]) AND run_at <= now()
      ORDER BY priority DESC, run_at, id
      LIMIT $2
      FOR UPDATE SKIP LOCKED
   )
   UPDATE ${tasks} t
      SET status = 'PROGRESS', attempt = t.attempt + 1, worker_id = $3, started_at = now(), heartbeat_at = now(),
          updated_at = now(), max_retries = coalesce(t.max_retries, $4)
     FROM picked
    WHERE t.id = picked.id
   RETURNING ${TASK_COLUMNS.replace(/(^|\s)(\w+)/g, "$1t.$2")}`,
);

export interface ClaimParams {
  queues: string[];
  limit: number;
  workerId: string;
  defaultMaxRetries: number;
}

/** Claims up to `limit` due tasks, highest priority first, then earliest run_at, then oldest. */
export async function claimTasks(q: Queryable, tasks: string, p: ClaimParams): Promise<TaskRow[]> {
  const { rows } = await run<TaskRow>(q, claimStatement(tasks), [p.queues, p.limit, p.workerId, p.defaultMaxRetries]);
  // RETURNING gives no order; start them in claim order.
  if (rows.length > 1) rows.sort(claimOrder);
  return rows;
}

function claimOrder(a: TaskRow, b: TaskRow): number {
  return (
    b.priority - a.priority ||
    a.run_at.getTime() - b.run_at.getTime() ||
    a.id.length - b.id.length ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

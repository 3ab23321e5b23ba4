import { perTable, run, type Queryable } from "../db/statements.js";
import type { TaskRow } from "../task.js";
import { live } from "./live.js";

/** What a worker needs of a claimed row to run it (returning fewer columns keeps the hot path's parsing cheap). */
export type ClaimedRow = Pick<
  TaskRow,
  "id" | "name" | "args" | "queue" | "attempt" | "retry_count" | "max_retries" | "timeout"
> & {
  /** Started at claim time (taken for a free slot); false for a row taken into the prefetch buffer. */
  started: boolean;
};

/*
 * Claiming, shared by both statements below: the picked ids are locked with SKIP LOCKED in a MATERIALIZED CTE, an
 * optimization fence, so Postgres first picks at most the LIMIT and only then updates exactly those; without the
 * fence the planner may fold the subquery into a join and lock or update more rows than the LIMIT. Concurrent
 * workers skip each other's locked rows instead of waiting on them.
 *
 * attempt is counted here, at claim time, so a task that kills its worker still uses up its retries; with worker_id
 * it is the lease every later transition of this attempt compares against. max_retries is fixed here from the
 * worker's default when the task was enqueued without one.
 *
 * The UPDATE finds each picked row by primary key in the live partition (live.ts). Named as `status = 'PENDING'`
 * instead, which also prunes to that partition, the condition matched the claim index's predicate, and whenever the
 * statistics said the partition was empty (after a drain and a vacuum) the planner looked up each picked row by
 * walking that index, whose last column is the id: 3.3 ms a claim of 32 instead of 0.7 ms.
 *
 * Only the first $5 rows in claim order, those the worker starts at once in its free slots, get started_at; the rest
 * wait in its prefetch buffer with started_at NULL until the worker records their start (sql/start.ts). A worker
 * that dies hands the unstarted ones back without charging them a retry (sweep.ts). The rank is taken over the few
 * picked rows, after the lock.
 *
 * RETURNING has no order, so the claimed rows are sorted into claim order by Postgres, on the sort keys it already
 * holds, and only the columns a worker runs a task with travel back: parsing a timestamp into a Date for every
 * claimed row, only to sort by it, took 3–4% of a worker's CPU in a drain of no-op tasks.
 */
const claimUpdate = (tasks: string) => `, ranked AS (
     SELECT id, row_number() OVER (ORDER BY priority DESC, run_at, id) AS n FROM picked
   ), claimed AS (
     UPDATE ${tasks} t
        SET status = 'PROGRESS', attempt = t.attempt + 1, worker_id = $3,
            started_at = CASE WHEN ranked.n <= $5 THEN now() END, heartbeat_at = now(),
            updated_at = now(), max_retries = coalesce(t.max_retries, $4)
       FROM ranked
      WHERE t.id = ranked.id AND ${live("t")}
     RETURNING t.id, t.name, t.args, t.queue, t.priority, t.run_at, t.attempt, t.retry_count, t.max_retries, t.timeout,
               t.started_at IS NOT NULL AS started
   )
   SELECT id, name, args, queue, attempt, retry_count, max_retries, timeout, started
     FROM claimed
    ORDER BY priority DESC, run_at, id`;

/*
 * One queue (the common case). `queue = $1` lets the scan walk tasks_claim_idx (queue, priority DESC, run_at, id)
 * WHERE PENDING in exactly the ORDER BY order and stop after the LIMIT, so a claim reads a few dozen index entries
 * however deep the queue. Measured on 2 cores with 20,000 pending tasks, claiming 32 at a time: 0.3 ms a claim,
 * against 3.7 ms with `queue = ANY($1)`, whose plan sorts every pending row of the queue on each claim (claim time
 * grew with queue depth: 9 ms at 20,000 pending).
 */
const claimOneQueue = perTable(
  "claim1",
  (tasks) => `WITH picked AS MATERIALIZED (
     SELECT id, priority, run_at FROM ${tasks}
      WHERE status = 'PENDING' AND queue = $1 AND run_at <= now()
      ORDER BY priority DESC, run_at, id
      LIMIT $2
      FOR UPDATE SKIP LOCKED
   )${claimUpdate(tasks)}`,
);

/*
 * Several queues. Each queue's head is read in index order by its own LATERAL scan (the same cheap walk as above,
 * at most $2 rows per queue), the heads are merged in claim order, and only the merged ones are locked. A head row
 * another worker holds is skipped, so under heavy contention a claim may return fewer rows than are due; the
 * worker then claims again.
 */
const claimManyQueues = perTable(
  "claimN",
  (tasks) => `WITH picked AS MATERIALIZED (
     SELECT t.id, t.priority, t.run_at FROM ${tasks} t
      WHERE t.id IN (
              SELECT head.id
                FROM unnest($1::text[]) AS q(name)
               CROSS JOIN LATERAL (
                     SELECT id FROM ${tasks}
                      WHERE status = 'PENDING' AND queue = q.name AND run_at <= now()
                      ORDER BY priority DESC, run_at, id
                      LIMIT $2
                    ) head)
        AND t.status = 'PENDING'
      ORDER BY t.priority DESC, t.run_at, t.id
      LIMIT $2
      FOR UPDATE OF t SKIP LOCKED
   )${claimUpdate(tasks)}`,
);

export interface ClaimParams {
  queues: string[];
  limit: number;
  /** How many of the claimed rows, in claim order, start at once (the rest go to the prefetch buffer). */
  startNow: number;
  workerId: string;
  defaultMaxRetries: number;
}

/**
 * Claims up to `limit` due tasks, highest priority first, then earliest run_at, then oldest.
 *
 * A worker claims on a connection with `synchronous_commit = off` (Store.claims): the claim's commit returns
 * without waiting for its WAL record to reach disk. It is visible to every other session at once, like any commit;
 * what it gives up is durability across a crash of the Postgres server itself, for the fraction of a second before
 * the WAL writer flushes it (and every synchronous commit after it, such as the task's completion, flushes it too).
 * A claim lost that way leaves its task PENDING with its former attempt, so the task runs again (at-least-once), and
 * the next claim takes the same attempt number again. Outcomes therefore compare the whole lease, attempt and
 * worker id (finish.ts): the lost attempt's outcome changes nothing under another worker's claim, and a worker that
 * claims again a lease it still holds does not start it a second time (Worker #dropReclaimed). Enqueues, outcomes
 * and hand-backs stay synchronous. Measured on 2 cores: a one-row UPDATE took 0.27–0.31 ms at p50 and 0.51–0.65 ms
 * at p99 with asynchronous commit, against 0.64–0.70 ms and 1.9–2.6 ms waiting for the flush; the claim is on the
 * path from enqueue to handler start of every task.
 */
export async function claimTasks(q: Queryable, tasks: string, p: ClaimParams): Promise<ClaimedRow[]> {
  const one = p.queues.length === 1;
  const { rows } = await run<ClaimedRow>(q, one ? claimOneQueue(tasks) : claimManyQueues(tasks), [
    one ? p.queues[0] : p.queues,
    p.limit,
    p.workerId,
    p.defaultMaxRetries,
    p.startNow,
  ]);
  return rows;
}

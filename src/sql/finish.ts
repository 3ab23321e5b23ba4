import { perTable, run, type Queryable } from "../db/statements.js";
import type { Claim } from "../task.js";
import { held } from "./lease.js";
import { live } from "./live.js";

/*
 * Completions are written in batches: the completer gathers the outcomes that arrive while a write is in flight
 * and sends them in one UPDATE. Each row is compare-and-set on (status = PROGRESS, attempt, worker_id), the lease
 * its claim took: an outcome for an attempt that was swept, handed back or re-claimed since changes nothing, so a
 * worker that comes back late can never overwrite a newer attempt. The worker id matters where a claim can be
 * lost: a claim whose commit a crash of the Postgres server undid (claims do not wait for the WAL flush; see
 * claimTasks) leaves its task with its former attempt, so the next claim takes the same attempt number again, and
 * only the worker id tells the two apart (the worker itself drops a claim of a lease it already holds).
 *
 * Measured on 2 cores (Postgres on the same machine): 32 completions as one batched UPDATE took 3.3–3.9 ms, as 32
 * single-row UPDATEs over 4 connections 21–35 ms: one round trip, one plan and one commit instead of 32.
 * The batch travels as three array literals (ids, attempts, durations) and one JSON array of the results (JSON
 * text already), each made by a single join, zipped back together by ROWS FROM. Building one JSON object per task
 * instead made a few hundred bytes of short-lived strings per task, a third of what a draining worker allocated.
 * Only the ids that did not match come back (usually none), not a row per task. A prefetched task whose start was
 * not recorded yet (sql/start.ts) gets its started_at from the outcome.
 *
 * Every statement here takes its rows through `held` (lease.ts): one primary-key lookup per task, locked, then an
 * UPDATE of the live rows joined to `held` by id. Joined to the batch straight away, Postgres chose its plan from
 * its estimates of the table, and a wrong one cost work in proportion to every running task of the cluster:
 * hashing every PROGRESS row (45 ms per batch of 1,000 with 50,000 tasks running elsewhere), a sequential scan once
 * the table had statistics, or a walk of the running-task index for every task (see lease.ts). `held` is estimated
 * from the batch's arrays (a handful of rows), not from the table, so each of its rows is looked up by primary key,
 * and `live` (live.ts) names no partial index's predicate. Naming the ids a second time, as an array for the
 * primary key (as the heartbeat does), made it worse on the partitioned table: the planner read them all once,
 * then compared every one with every row of `held`, 1,000,000 comparisons for a batch of 1,000. test/plans.test.ts
 * checks these plans with no statistics, fresh ones, and ones taken while nothing ran. The batch statements are not
 * prepared, so each is planned for the batch it carries (see perTable).
 */

const completeStatement = perTable(
  "complete",
  (tasks) => `WITH d AS MATERIALIZED (
     SELECT d.id, d.attempt, d.duration, nullif(d.result, 'null'::jsonb) AS result
       FROM ROWS FROM (unnest($1::bigint[]), unnest($2::int[]), unnest($3::float8[]), jsonb_array_elements($4::jsonb))
         AS d(id, attempt, duration, result)
   ), ${held(tasks, "$5")}, done AS (
     UPDATE ${tasks} t
        SET status = 'COMPLETED', result = h.result, error = NULL, finished_at = now(), updated_at = now(),
            duration = h.duration, started_at = coalesce(t.started_at, now() - h.duration * interval '1 second')
       FROM held h
      WHERE t.id = h.id AND ${live("t")}
     RETURNING t.id
   )
   SELECT array_agg(d.id::text) FILTER (WHERE done.id IS NULL) AS missed FROM d LEFT JOIN done ON done.id = d.id`,
  { prepared: false },
);

/*
 * A batch of one (a worker that is keeping up finishes its tasks one by one) goes as a prepared single-row UPDATE
 * by primary key, its lease checked by `held` like the others. The batch statement above is parsed and planned at
 * every run, which for one task cost more than the update itself: measured on 2 cores, 0.23 ms of planning for
 * 0.23 ms of execution.
 */
const completeOneStatement = perTable(
  "complete_one",
  (tasks) => `WITH d AS MATERIALIZED (SELECT $1::bigint AS id, $2::int AS attempt), ${held(tasks, "$5")}
   UPDATE ${tasks} t
      SET status = 'COMPLETED', result = nullif($3::jsonb, 'null'::jsonb), error = NULL, finished_at = now(),
          updated_at = now(), duration = $4, started_at = coalesce(t.started_at, now() - $4 * interval '1 second')
    WHERE t.id = $1 AND ${live("t")} AND EXISTS (SELECT FROM held)`,
);

/*
 * A failed attempt goes back to PENDING while retries are left (retry_count < max_retries and not `final`), due
 * after an exponential backoff with jitter: base * 2^retry_count seconds, capped, then scaled by a random factor in
 * [0.5, 1) so a burst of failures does not come back as a burst. Otherwise the task is FAILED. The decision is
 * made in SQL from the row itself, under the same compare-and-set as completions.
 */
const RETRY = "(NOT d.final AND t.retry_count < coalesce(t.max_retries, 0))";
const failStatement = perTable(
  "fail",
  (tasks) => `WITH d AS MATERIALIZED (
     SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::float8[], $5::bool[])
       AS d(id, attempt, error, duration, final)
   ), ${held(tasks, "$8")}
   UPDATE ${tasks} t
      SET status = CASE WHEN ${RETRY} THEN 'PENDING' ELSE 'FAILED' END,
          retry_count = t.retry_count + ${RETRY}::int,
          run_at = CASE WHEN ${RETRY}
                        THEN now() + least($6::float8 * power(2, t.retry_count), $7::float8)
                                     * (0.5 + random() / 2) * interval '1 second'
                        ELSE t.run_at END,
          finished_at = CASE WHEN ${RETRY} THEN NULL ELSE now() END,
          error = d.error, duration = d.duration, updated_at = now(),
          started_at = coalesce(t.started_at, now() - d.duration * interval '1 second')
     FROM held d
    WHERE t.id = d.id AND ${live("t")}
   RETURNING t.id, t.status, t.queue, t.run_at`,
  { prepared: false },
);

export interface Completion extends Claim {
  /** JSON text of the result. */
  resultJson: string;
  duration: number;
}

export interface Failure extends Claim {
  error: string;
  duration: number;
  /** No retry whatever the count (e.g. unknown task). */
  final: boolean;
}

export interface Backoff {
  /** Seconds before the first retry (before jitter). */
  base: number;
  /** Longest wait between retries, in seconds. */
  max: number;
}

/** Returns the ids whose row this write did not change: they had moved on (swept, handed back, re-claimed). */
export async function completeTasks(
  q: Queryable,
  tasks: string,
  workerId: string,
  items: Completion[],
): Promise<string[]> {
  const n = items.length;
  if (n === 1) {
    const c = items[0]!;
    const { rowCount } = await run(q, completeOneStatement(tasks), [
      c.id,
      c.attempt,
      c.resultJson,
      c.duration,
      workerId,
    ]);
    return rowCount === 1 ? [] : [c.id];
  }
  const ids = new Array<string>(n);
  const attempts = new Array<number>(n);
  const durations = new Array<number>(n);
  const results = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    const c = items[i]!;
    ids[i] = c.id;
    attempts[i] = c.attempt;
    durations[i] = c.duration;
    results[i] = c.resultJson;
  }
  const { rows } = await run<{ missed: string[] | null }>(q, completeStatement(tasks), [
    `{${ids.join(",")}}`,
    `{${attempts.join(",")}}`,
    `{${durations.join(",")}}`,
    `[${results.join(",")}]`,
    workerId,
  ]);
  return rows[0]?.missed ?? [];
}

export interface FailedRow {
  id: string;
  /** PENDING: will be retried at run_at. */
  status: "PENDING" | "FAILED";
  queue: string;
  run_at: Date;
}

/** Returns the changed rows by id: PENDING (will retry at run_at) or FAILED. */
export async function failTasks(
  q: Queryable,
  tasks: string,
  workerId: string,
  items: Failure[],
  backoff: Backoff,
): Promise<Map<string, FailedRow>> {
  const { rows } = await run<FailedRow>(q, failStatement(tasks), [
    items.map((f) => f.id),
    items.map((f) => f.attempt),
    items.map((f) => f.error),
    items.map((f) => f.duration),
    items.map((f) => f.final),
    backoff.base,
    backoff.max,
    workerId,
  ]);
  return new Map(rows.map((r) => [r.id, r]));
}

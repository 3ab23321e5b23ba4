import { perTable, run, type Queryable } from "../db/statements.js";
import type { Claim } from "../task.js";
import { appendError, errorEntry } from "./errors-column.js";
import { held } from "./lease.js";
import { live } from "./live.js";

/*
 * Outcomes go in batches: one UPDATE for everything that finished while the previous write was in flight (32
 * completions took 3.3–3.9 ms batched, 21–35 ms as single-row UPDATEs over 4 connections). Each row is a
 * compare-and-set on the lease through `held` (lease.ts), so a worker that comes back late changes nothing. The batch
 * travels as array literals and one JSON array of results, zipped by ROWS FROM: an object per task made a third of a
 * draining worker's allocations. Only the ids that missed come back. A prefetched task whose start was not recorded
 * yet (start.ts) gets started_at from its duration. Not prepared, so each batch is planned for its size.
 * See docs/architecture.md, Outcomes in batches and The lease.
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
 * A batch of one (a worker keeping up finishes tasks one by one) goes as a prepared single-row UPDATE: planning the
 * batch statement for one task cost as much as running it, 0.23 ms each.
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
 * Decided in SQL from the row: PENDING while retries are left and the failure is not final, FAILED otherwise. A
 * retry is due after the task's own delay (d.delay, from its definition's backoff), or, for a task without one (NULL),
 * after min(base * 2^retry_count, max) seconds times a random factor in [0.5, 1), so a burst of failures does not
 * come back as a burst. Each failure is appended to `errors` (errors-column.ts).
 */
// A task whose cancel was requested is not retried: it ends CANCELLED (as in the sweep), even when it failed before
// its worker heard the request.
const RETRY = "(NOT d.final AND NOT t.cancel_requested AND t.retry_count < coalesce(t.max_retries, 0))";
const failStatement = perTable(
  "fail",
  (tasks) => `WITH d AS MATERIALIZED (
     SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::float8[], $5::bool[], $9::text[], $10::text[],
                          $11::float8[])
       AS d(id, attempt, error, duration, final, type, message, delay)
   ), ${held(tasks, "$8")}
   UPDATE ${tasks} t
      SET status = CASE WHEN t.cancel_requested THEN 'CANCELLED' WHEN ${RETRY} THEN 'PENDING' ELSE 'FAILED' END,
          retry_count = t.retry_count + ${RETRY}::int,
          run_at = CASE WHEN ${RETRY}
                        THEN now() + coalesce(d.delay, least($6::float8 * power(2, t.retry_count), $7::float8)
                                                       * (0.5 + random() / 2)) * interval '1 second'
                        ELSE t.run_at END,
          finished_at = CASE WHEN ${RETRY} THEN NULL ELSE now() END,
          error = d.error, duration = d.duration, updated_at = now(),
          errors = ${appendError(
            "t.errors",
            errorEntry({ type: "d.type", message: "d.message", text: "d.error", attempt: "d.attempt", workerId: "$8" }),
          )},
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
  /** The full text stored in `error`: message and stack. */
  error: string;
  /**
   * The error's name (`TypeError`, `TaskTimeoutError`…) and message, for the `errors` entry; the completer reads them
   * from the first line of `error` when not given.
   */
  type?: string;
  message?: string;
  duration: number;
  /** No retry whatever the count (e.g. unknown task). */
  final: boolean;
  /** Seconds before the retry, from the task's own backoff; null (or absent): the worker's default backoff. */
  delay?: number | null;
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
  /** PENDING: will be retried at run_at; CANCELLED: its cancel had been requested. */
  status: "PENDING" | "FAILED" | "CANCELLED";
  queue: string;
  run_at: Date;
}

/** Returns the changed rows by id: PENDING (will retry at run_at), FAILED, or CANCELLED (cancel requested). */
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
    items.map((f) => f.type),
    items.map((f) => f.message),
    items.map((f) => f.delay ?? null),
  ]);
  return new Map(rows.map((r) => [r.id, r]));
}

import { perTable, run, type Queryable } from "../db/statements.js";
import type { Claim, TaskRow } from "../task.js";
import { held } from "./lease.js";
import type { Expectation } from "../task-expectation.js";
import { expected } from "./admin-state.js";
import { live } from "./live.js";

/*
 * A cancel request is compare-and-set on the status it found: a PENDING task becomes CANCELLED at once; a PROGRESS
 * task gets cancel_requested (only a running one: retryTask reads it as an attempt cut short), and the worker holding it (told through Redis, or by its next heartbeat, which returns
 * the held ids whose cancel was requested) stops it and writes CANCELLED itself, through its lease. A finished task is
 * left alone. The row is found and locked by its primary key alone, behind OFFSET 0, and its status checked once
 * locked: given `status = 'PENDING'`, the planner may walk the claim index instead, whenever its statistics say few
 * tasks wait, and then read the whole backlog (see lease.ts).
 */
const requestStatement = perTable(
  "cancel",
  (tasks) => `WITH target AS MATERIALIZED (
     SELECT t.id, t.status, t.attempt FROM ${tasks} t
      WHERE t.id = $1 AND ${live("t")}
     OFFSET 0
        FOR UPDATE
   )
   UPDATE ${tasks} t
      SET status = CASE WHEN target.status = 'PENDING' THEN 'CANCELLED' ELSE t.status END,
          finished_at = CASE WHEN target.status = 'PENDING' THEN now() ELSE t.finished_at END,
          cancel_requested = t.cancel_requested OR target.status = 'PROGRESS', updated_at = now()
     FROM target
    WHERE t.id = target.id AND ${live("t")} AND target.status IN ('PENDING', 'PROGRESS') AND ${expected("target", 2)}
   RETURNING t.*`,
);

/**
 * Cancels task `id` if it is PENDING, or records the request if it is running (PROGRESS), and returns its row as it
 * is now; null if it was neither (finished, or not a task) or not as `expect` says.
 */
export async function requestCancel(
  q: Queryable,
  tasks: string,
  id: string,
  expect?: Expectation,
): Promise<TaskRow | null> {
  const { rows } = await run<TaskRow>(q, requestStatement(tasks), [
    id,
    expect?.status ?? null,
    expect?.attempt ?? null,
  ]);
  return rows[0] ?? null;
}

/*
 * The worker's side: attempts it stopped at the request of cancelTask become CANCELLED, in one batch like the other
 * outcomes (completer.ts), each a compare-and-set on the lease through `held`, so a cancel never overwrites a newer
 * attempt or a finished task. Never retried. The result is cleared: a cancelled task has none. Only the ids written
 * come back. Not prepared, so each batch is planned for its size.
 */
const cancelledStatement = perTable(
  "cancelled",
  (tasks) => `WITH d AS MATERIALIZED (
     SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::float8[]) AS d(id, attempt, error, duration)
   ), ${held(tasks, "$5")}
   UPDATE ${tasks} t
      SET status = 'CANCELLED', result = NULL, error = h.error, finished_at = now(), updated_at = now(),
          duration = h.duration, started_at = coalesce(t.started_at, now() - h.duration * interval '1 second')
     FROM held h
    WHERE t.id = h.id AND ${live("t")}
   RETURNING t.id`,
  { prepared: false },
);

export interface Cancellation extends Claim {
  /** Why, as stored in `error`: the handler's TaskCancelledError, or that it was abandoned after cancelGrace. */
  error: string;
  duration: number;
}

/** Writes the cancelled attempts; returns the ids written (an attempt that moved on is not among them). */
export async function cancelTasks(
  q: Queryable,
  tasks: string,
  workerId: string,
  items: readonly Cancellation[],
): Promise<Set<string>> {
  if (items.length === 0) return new Set();
  const { rows } = await run<{ id: string }>(q, cancelledStatement(tasks), [
    items.map((c) => c.id),
    items.map((c) => c.attempt),
    items.map((c) => c.error),
    items.map((c) => c.duration),
    workerId,
  ]);
  return new Set(rows.map((r) => String(r.id)));
}

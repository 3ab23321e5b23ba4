import { perTable, run, type Queryable } from "../db/statements.js";
import type { Claim } from "../task.js";
import { held } from "./lease.js";
import { live } from "./live.js";

/*
 * A hand-back (at shutdown, or of a prefetch buffer that may have been swept): PENDING again with retry_count and
 * run_at unchanged, so the task keeps its place at the head of its queue; a prefetched task also gives its attempt
 * back. A task whose cancel was requested meanwhile ends CANCELLED instead of running again (one never started is
 * simply cancelled, as a PENDING task is). A compare-and-set on the lease through `held`. See docs/architecture.md,
 * Prefetch.
 */
const releaseStatement = perTable(
  "release",
  (tasks) => `WITH d AS MATERIALIZED (
     SELECT * FROM unnest($1::bigint[], $2::int[], $4::bool[]) AS d(id, attempt, started)
   ), ${held(tasks, "$3")}
   UPDATE ${tasks} t
      SET status = CASE WHEN t.cancel_requested THEN 'CANCELLED' ELSE 'PENDING' END,
          finished_at = CASE WHEN t.cancel_requested THEN now() END,
          cancel_requested = t.cancel_requested AND h.started,
          heartbeat_at = NULL, updated_at = now(),
          attempt = t.attempt - (NOT h.started)::int,
          started_at = CASE WHEN h.started THEN t.started_at END
     FROM held h
    WHERE t.id = h.id AND ${live("t")}
   RETURNING t.id, t.status = 'CANCELLED' AS cancelled`,
  { prepared: false },
);

export interface Release extends Claim {
  /** Whether its handler started (false: it was only prefetched). */
  started: boolean;
}

/** The rows handed back; `cancelled`: its cancel had been requested, so it ended CANCELLED instead. */
export async function releaseTasks(
  q: Queryable,
  tasks: string,
  workerId: string,
  items: readonly Release[],
): Promise<{ id: string; cancelled: boolean }[]> {
  if (items.length === 0) return [];
  const { rows } = await run<{ id: string; cancelled: boolean }>(q, releaseStatement(tasks), [
    items.map((i) => i.id),
    items.map((i) => i.attempt),
    workerId,
    items.map((i) => i.started),
  ]);
  return rows;
}

import { perTable, run, type Queryable } from "../db/statements.js";
import type { Claim } from "../task.js";
import { held } from "./lease.js";
import { live } from "./live.js";

/*
 * A hand-back (at shutdown, or of a prefetch buffer that may have been swept): PENDING again with retry_count and
 * run_at unchanged, so the task keeps its place at the head of its queue; a prefetched task also gives its attempt
 * back. A compare-and-set on the lease through `held`. See docs/architecture.md, Prefetch.
 */
const releaseStatement = perTable(
  "release",
  (tasks) => `WITH d AS MATERIALIZED (
     SELECT * FROM unnest($1::bigint[], $2::int[], $4::bool[]) AS d(id, attempt, started)
   ), ${held(tasks, "$3")}
   UPDATE ${tasks} t
      SET status = 'PENDING', heartbeat_at = NULL, updated_at = now(),
          attempt = t.attempt - (NOT h.started)::int,
          started_at = CASE WHEN h.started THEN t.started_at END
     FROM held h
    WHERE t.id = h.id AND ${live("t")}
   RETURNING t.id`,
  { prepared: false },
);

export interface Release extends Claim {
  /** Whether its handler started (false: it was only prefetched). */
  started: boolean;
}

export async function releaseTasks(
  q: Queryable,
  tasks: string,
  workerId: string,
  items: readonly Release[],
): Promise<string[]> {
  if (items.length === 0) return [];
  const { rows } = await run<{ id: string }>(q, releaseStatement(tasks), [
    items.map((i) => i.id),
    items.map((i) => i.attempt),
    workerId,
    items.map((i) => i.started),
  ]);
  return rows.map((r) => r.id);
}

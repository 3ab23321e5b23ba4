import { perTable, type Statement } from "../db/statements.js";
import { held } from "./lease.js";
import { live } from "./live.js";

/*
 * One UPDATE per tick for every task this worker ($1) holds, named by (id, attempt) rather than every PROGRESS row
 * under its id: a claim whose answer was lost leaves rows the worker never started, and those must go stale. A task
 * past its timeout plus $4 grace seconds is no longer beaten, so a handler that blocks its thread for good is still
 * swept. $2 ids and $3 attempts are the comma-joined text the thread was sent, split here. SKIP LOCKED: a locked row
 * is this worker's outcome being written, and waiting on it deadlocked against batched outcomes. Both steps go by
 * primary key: a join was planned as a nested loop, 420 ms for 1,000 held tasks with 50,000 running elsewhere.
 * The beat also says which of them cancelTask asked to stop (`cancel`, "id:attempt,…", usually empty): the row is
 * touched anyway, and this is how a worker hears a cancel request that Redis did not bring it.
 * See docs/architecture.md, Heartbeats and the sweep, and How cancel and progress travel.
 */
export const heartbeatStatement: (tasks: string) => Statement = perTable(
  "heartbeat",
  (tasks) => `WITH d AS MATERIALIZED (
     SELECT * FROM unnest(string_to_array($2, ',')::bigint[], string_to_array($3, ',')::int[]) AS d(id, attempt)
   ), ${held(tasks, "$1", { skipLocked: true, also: "coalesce(l.started_at, now()) + (l.timeout + $4::float8) * interval '1 second' > now()" })}
   , beaten AS (
     UPDATE ${tasks} t
        SET heartbeat_at = now()
      WHERE t.id = ANY (ARRAY(SELECT id FROM held)) AND ${live("t")}
     RETURNING t.id, t.attempt, t.cancel_requested
   )
   SELECT count(*)::int AS beaten,
          coalesce(string_agg(id::text || ':' || attempt::text, ',') FILTER (WHERE cancel_requested), '') AS cancel
     FROM beaten`,
  { prepared: false },
);

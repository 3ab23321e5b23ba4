import { perTable, type Statement } from "../db/statements.js";
import { held } from "./lease.js";
import { live } from "./live.js";

/*
 * One UPDATE per tick covers every task this worker holds (running, ready to start, or with its outcome not yet
 * written), named by (id, attempt) and found through the primary key. Naming them, rather than matching every
 * PROGRESS row that carries this worker's id, matters: a claim whose answer was lost with its connection leaves
 * rows under this worker's id that it never started, and those must go stale so the sweeper can hand them on.
 *
 * A task stops being heartbeated once it is past its own timeout plus a grace period, so a task that hangs its
 * worker's main thread is still swept, while a long CPU-bound task within its timeout never looks dead (the
 * statement runs on a thread of its own; see worker/heartbeat.ts). $1 worker id, $2 ids and $3 attempts (each
 * comma-separated, in the same order), $4 grace seconds. The lists travel as the text the thread was sent: split
 * here, they cost the thread no string or map entry per task.
 *
 * Rows are locked with SKIP LOCKED: a row locked right now is being completed, failed or handed back by this same
 * worker, so it needs no beat. Waiting on it instead deadlocked against batched outcome writes, which lock the
 * same rows in another order.
 *
 * Both steps go through the primary key whatever the planner thinks: `held` (lease.ts) looks the named tasks up
 * one by one, and the UPDATE takes the locked ids as one array. A join of the list against the table was planned as
 * a nested loop that re-read the whole list for every running task: 420 ms for 1,000 held tasks with 50,000 running
 * elsewhere.
 */
export const heartbeatStatement: (tasks: string) => Statement = perTable(
  "heartbeat",
  (tasks) => `WITH d AS MATERIALIZED (
     SELECT * FROM unnest(string_to_array($2, ',')::bigint[], string_to_array($3, ',')::int[]) AS d(id, attempt)
   ), ${held(tasks, "$1", { skipLocked: true, also: "coalesce(l.started_at, now()) + (l.timeout + $4::float8) * interval '1 second' > now()" })}
   UPDATE ${tasks} t
      SET heartbeat_at = now()
    WHERE t.id = ANY (ARRAY(SELECT id FROM held)) AND ${live("t")}`,
  { prepared: false },
);

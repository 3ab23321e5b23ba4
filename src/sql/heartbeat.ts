import { perTable, type Statement } from "../db/store.js";

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
 * Both steps go through the primary key whatever the planner thinks: the LATERAL lookup takes the named tasks one
 * by one, and the UPDATE takes the locked ids as one array. A join of the list against the table was planned as a
 * nested loop that re-read the whole list for every running task: 420 ms for 1,000 held tasks with 50,000 running
 * elsewhere. The lookup names the primary key alone, behind OFFSET 0 (which keeps Postgres from pushing the other
 * conditions into it), and the lease is checked on the row it locked: given `status = 'PROGRESS'`, the planner
 * could walk the running-task index instead, and did whenever its statistics said that index was nearly empty (as
 * they do after a VACUUM between bursts): every lookup then read every running task, 1.2 s for 1,000 held tasks
 * with 5,000 running, minutes in a drain, all the while holding the row locks that outcome writes wait for.
 */
export const heartbeatStatement: (tasks: string) => Statement = perTable(
  "heartbeat",
  (tasks) => `WITH live AS MATERIALIZED (
     SELECT l.id
       FROM unnest(string_to_array($2, ',')::bigint[], string_to_array($3, ',')::int[]) AS h(id, attempt)
      CROSS JOIN LATERAL (
            SELECT t.id, t.attempt, t.status, t.worker_id, t.started_at, t.timeout FROM ${tasks} t
             WHERE t.id = h.id
            OFFSET 0
               FOR UPDATE SKIP LOCKED
           ) l
      WHERE l.attempt = h.attempt AND l.status = 'PROGRESS' AND l.worker_id = $1
        AND l.started_at + (l.timeout + $4::float8) * interval '1 second' > now()
   )
   UPDATE ${tasks} t
      SET heartbeat_at = now()
    WHERE t.id = ANY (ARRAY(SELECT id FROM live))`,
  { prepared: false },
);

import { perTable, type Statement } from "../db/store.js";

/*
 * One UPDATE per tick covers every task this worker holds (running, ready to start, or with its outcome not yet
 * written), named by (id, attempt) and found through the primary key. Naming them, rather than matching every
 * PROGRESS row that carries this worker's id, matters: a claim whose answer was lost with its connection leaves
 * rows under this worker's id that it never started, and those must go stale so the sweeper can hand them on.
 *
 * A task stops being heartbeated once it is past its own timeout plus a grace period, so a task that hangs its
 * worker's main thread is still swept, while a long CPU-bound task within its timeout never looks dead (the
 * statement runs on a thread of its own; see worker/heartbeat.ts). $1 worker id, $2 ids, $3 attempts, $4 grace
 * seconds.
 */
export const heartbeatStatement: (tasks: string) => Statement = perTable(
  "heartbeat",
  (tasks) => `UPDATE ${tasks} t
      SET heartbeat_at = now()
     FROM unnest($2::bigint[], $3::int[]) AS h(id, attempt)
    WHERE t.id = h.id AND t.attempt = h.attempt AND t.status = 'PROGRESS' AND t.worker_id = $1
      AND t.started_at + (t.timeout + $4::float8) * interval '1 second' > now()`,
);

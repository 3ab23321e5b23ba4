import { perTable, type Statement } from "../db/store.js";

/*
 * One UPDATE per tick covers every task this worker is running: it finds them through tasks_running_idx by
 * worker_id instead of shipping a list of ids. A task stops being heartbeated once it is past its own timeout plus
 * a grace period, so a task that hangs its worker's main thread is still swept, while a long CPU-bound task within
 * its timeout never looks dead (the statement runs on a thread of its own; see worker/heartbeat.ts).
 * $1 worker id, $2 grace seconds.
 */
export const heartbeatStatement: (tasks: string) => Statement = perTable(
  "heartbeat",
  (tasks) => `UPDATE ${tasks}
      SET heartbeat_at = now()
    WHERE worker_id = $1 AND status = 'PROGRESS'
      AND started_at + (timeout + $2::float8) * interval '1 second' > now()`,
);

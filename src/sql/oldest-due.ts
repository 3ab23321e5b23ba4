import { perTable, run, type Queryable } from "../db/statements.js";

/*
 * The age of the oldest due PENDING task of each queue that has pending tasks, for a metrics scrape on a table of any
 * size. tasks_claim_idx is ordered (queue, priority DESC, run_at, id), so min(run_at) of a queue is not at one end of
 * it: a plain min() read every pending row of the queue. Instead the statement skips through the index: the distinct
 * queues one probe each, then each queue's distinct priorities one probe each, then the first run_at of each
 * (queue, priority), which is that priority's oldest. Work is one index probe per queue and priority in use (at most
 * 201 priorities), whatever the number of pending rows. A queue with pending tasks none of which is due gets age 0.
 */
const oldestDue = perTable(
  "oldest_due",
  (tasks) => `WITH RECURSIVE queues AS (
     (SELECT queue FROM ${tasks} WHERE status = 'PENDING' ORDER BY queue LIMIT 1)
     UNION ALL
     SELECT n.queue FROM queues q
      CROSS JOIN LATERAL (SELECT queue FROM ${tasks}
                           WHERE status = 'PENDING' AND queue > q.queue ORDER BY queue LIMIT 1) n
   ), heads AS (
     SELECT q.queue, h.priority FROM queues q
      CROSS JOIN LATERAL (SELECT priority FROM ${tasks}
                           WHERE status = 'PENDING' AND queue = q.queue ORDER BY priority DESC LIMIT 1) h
     UNION ALL
     SELECT p.queue, n.priority FROM heads p
      CROSS JOIN LATERAL (SELECT priority FROM ${tasks}
                           WHERE status = 'PENDING' AND queue = p.queue AND priority < p.priority
                           ORDER BY priority DESC LIMIT 1) n
   )
   SELECT h.queue, coalesce(extract(epoch FROM now() - min(o.run_at)), 0)::float8 AS age
     FROM heads h
     LEFT JOIN LATERAL (SELECT run_at FROM ${tasks}
                         WHERE status = 'PENDING' AND queue = h.queue AND priority = h.priority AND run_at <= now()
                         ORDER BY run_at LIMIT 1) o ON true
    GROUP BY h.queue`,
);

export interface QueueAge {
  queue: string;
  /** Seconds since the oldest due task of the queue became due; 0 when none is due. */
  age: number;
}

/** Per queue with pending tasks, how long its oldest due task has waited (see the statement's comment). */
export function oldestDueAges(q: Queryable, tasks: string): Promise<QueueAge[]> {
  return run<QueueAge>(q, oldestDue(tasks), []).then((r) => r.rows);
}

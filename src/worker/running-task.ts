import type { ClaimedRow } from "../sql/claim.js";
import type { RunningTask } from "./events.js";

/** A claimed row as the worker's task events describe it. Built only when an event is emitted. */
export function runningTask(row: ClaimedRow, workerId: string, defaultMaxRetries = 0): RunningTask {
  return {
    id: row.id,
    name: row.name,
    queue: row.queue,
    args: row.args,
    attempt: row.attempt,
    retryCount: row.retry_count,
    // A claim writes in the worker's default; a row claimed before that was in place may still have none.
    maxRetries: row.max_retries ?? defaultMaxRetries,
    workerId,
  };
}

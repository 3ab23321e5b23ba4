// @ts-check
// Plain JavaScript so that the heartbeat thread (worker/heartbeat-thread.js) runs its statement by the same rule as
// the main thread's statements (statements.ts), from the sources or the build alike.

/** How many times a statement is run in all when each run meets a moved row. */
const MOVED_ROW_RUNS = 5;

/**
 * Runs `fn` again, at once, when it failed on a row that moved partition (isMovedRowError), up to MOVED_ROW_RUNS
 * runs in all. A task moves from tasks_live to tasks_done when it finishes (migration 0003). A statement that locks
 * or updates a row another transaction moved after this statement took its snapshot cannot follow it there, as it
 * follows an update within one table: Postgres fails the statement instead (SQLSTATE 40001), even under SKIP
 * LOCKED. Every statement run this way is a transaction of its own, so the failed run changed nothing, and the next
 * run sees the row where it went: a heartbeat no longer beats a finished task, an outcome write finds the lease gone,
 * a claim or sweep leaves the row alone, just as a compare-and-set on the moved row would have. The inserts, the one
 * kind of statement run inside a caller's transaction, lock no existing row and never meet this error.
 * @template T
 * @param {() => Promise<T>} fn
 * @returns {Promise<T>}
 */
export async function retryMoved(fn) {
  for (let runs = 1; ; runs++) {
    try {
      return await fn();
    } catch (err) {
      if (runs >= MOVED_ROW_RUNS || !isMovedRowError(err)) throw err;
    }
  }
}

/**
 * Postgres's error for a row that moved partition after the statement's snapshot (see retryMoved).
 * @param {unknown} err
 * @returns {boolean}
 */
export function isMovedRowError(err) {
  const e = /** @type {{ code?: string, message?: string } | undefined} */ (err);
  return e?.code === "40001" && /moved to another partition/.test(e.message ?? "");
}

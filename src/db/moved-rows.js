// @ts-check
// Plain JavaScript so that the heartbeat thread (worker/heartbeat-thread.js) runs its statement by the same rule as
// the main thread's statements (statements.ts), from the sources or the build alike.

/** How many times a statement is run in all when each run meets a moved row. */
const MOVED_ROW_RUNS = 5;

/**
 * Runs `fn` again, at once, when it failed on a row that moved partition (isMovedRowError), up to MOVED_ROW_RUNS
 * runs in all. A finished task moves from tasks_live to tasks_done, and Postgres fails a statement that meets such
 * a row after its snapshot (40001), even under SKIP LOCKED. Each statement run this way is a transaction of its own,
 * so the rerun sees the row where it went and leaves it alone, as a compare-and-set would have.
 * See docs/architecture.md, Two partitions.
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

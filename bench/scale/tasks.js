// @ts-check
// Handlers for bench/scale/run.js, loaded by `skiplock run-worker --tasks bench/scale/tasks.js`.

/** Does nothing: the drain is bound by claims and outcomes (Postgres and the workers' CPU). */
export function noop() {
  return null;
}

/**
 * Waits `ms`, as a task waiting on another service would: the drain is bound by the cluster's slots.
 * @param {number} ms
 */
export function nap(ms) {
  return new Promise((resolve) => setTimeout(() => resolve(ms), ms));
}

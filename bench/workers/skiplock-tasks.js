// @ts-check
// Handlers for `skiplock run-worker --tasks bench/workers/skiplock-tasks.js`, run by the benchmark as a child
// process with an IPC channel. Timestamps are CLOCK_MONOTONIC milliseconds (process.hrtime), comparable across
// processes on one machine.

let first = true;

const now = () => Number(process.hrtime.bigint()) / 1e6;

/** A no-op; the first call tells the benchmark when draining started. */
export function noop() {
  if (first) {
    first = false;
    process.send?.({ type: "first", t: now() });
  }
}

/**
 * Tells the benchmark when task `i` started (idle-latency probe).
 * @param {number} i
 */
export function ping(i) {
  process.send?.({ type: "start", i, t: now() });
}

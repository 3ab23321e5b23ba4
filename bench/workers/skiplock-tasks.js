// @ts-check
// Handlers for `skiplock run-worker --tasks bench/workers/skiplock-tasks.js`, run by the benchmark as a child
// process with an IPC channel. Timestamps are CLOCK_MONOTONIC milliseconds (process.hrtime), comparable across
// processes on one machine.
import v8 from "node:v8";

let first = true;
/** With BENCH_HEAP_EVERY=N (the memory scenario), every Nth no-op reports the worker's V8 heap. */
const heapEvery = Number(process.env.BENCH_HEAP_EVERY ?? 0);
let count = 0;

const now = () => Number(process.hrtime.bigint()) / 1e6;

/** A no-op; the first call tells the benchmark when draining started. */
export function noop() {
  if (first) {
    first = false;
    process.send?.({ type: "first", t: now() });
  }
  if (heapEvery > 0 && ++count % heapEvery === 0) {
    const old = v8.getHeapSpaceStatistics().find((s) => s.space_name === "old_space");
    const mib = (/** @type {number} */ b) => Math.round((b / 1048576) * 10) / 10;
    process.send?.({
      type: "heap",
      t: now(),
      oldSpaceMiB: mib(old?.space_used_size ?? NaN),
      heapTotalMiB: mib(process.memoryUsage().heapTotal),
    });
  }
}

/**
 * Tells the benchmark when task `i` started (idle-latency probe).
 * @param {number} i
 */
export function ping(i) {
  process.send?.({ type: "start", i, t: now() });
}

// @ts-check
// The soak's handler, loaded by `skiplock run-worker --tasks bench/soak/tasks.js`. Each task carries its number in
// the run and the producer's clock when it was enqueued (Date.now(), the same machine's clock): the handler notes
// how long the task waited for its start and sends those notes to the soak in batches over the worker's IPC channel
// (run-worker is started with one to forward its events).

/** @type {number[]} pairs: task number, milliseconds from enqueue to start */
let pending = [];

function flush() {
  if (pending.length === 0 || !process.send) return;
  const batch = pending;
  pending = [];
  process.send({ soak: batch });
}
setInterval(flush, 250).unref();

/**
 * @param {number} i the task's number in the run
 * @param {number} enqueuedAt the producer's Date.now() just before the enqueue call
 */
export function soak(i, enqueuedAt) {
  pending.push(i, Date.now() - enqueuedAt);
  if (pending.length >= 4000) flush();
  return null;
}

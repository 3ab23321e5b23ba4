/**
 * The worker's own clock, in epoch ms. The scheduler never decides with it what is due (the database's now() does);
 * it only measures how far it is from the database's, to sleep until the next tick. `SKIPLOCK_TEST_CLOCK_OFFSET`
 * (seconds) shifts it: a test-only way to run a worker whose clock is wrong.
 */
export function workerClock(): () => number {
  const offsetMs = Number(process.env.SKIPLOCK_TEST_CLOCK_OFFSET ?? 0) * 1000;
  return Number.isFinite(offsetMs) && offsetMs !== 0 ? () => Date.now() + offsetMs : Date.now;
}

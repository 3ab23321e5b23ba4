// @ts-check
// A BullMQ worker process for the benchmark: runs `noop` and `ping` jobs from BENCH_QUEUE and reports to the
// parent over IPC (first no-op started, BENCH_EXPECT no-ops completed, each ping's start). Stops on SIGTERM.
import { Worker } from "bullmq";

const expect = Number(process.env.BENCH_EXPECT);
const url = new URL(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
let started = 0;
let completed = 0;
const now = () => Number(process.hrtime.bigint()) / 1e6;

const worker = new Worker(
  /** @type {string} */ (process.env.BENCH_QUEUE),
  async (job) => {
    if (job.name === "ping") {
      process.send?.({ type: "start", i: job.data.i, t: now() });
    } else if (++started === 1) {
      process.send?.({ type: "first", t: now() });
    }
  },
  {
    connection: {
      host: url.hostname,
      port: Number(url.port || 6379),
      ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
      db: Number(url.pathname.slice(1) || 0),
      maxRetriesPerRequest: null,
    },
    prefix: process.env.BENCH_PREFIX,
    concurrency: Number(process.env.BENCH_CONCURRENCY ?? 32),
  },
);
worker.on("completed", (job) => {
  if (job.name === "noop" && ++completed === expect) process.send?.({ type: "done", count: completed, t: now() });
});
worker.on("error", (err) => process.stderr.write(`bullmq worker error: ${err.message}\n`));
await worker.waitUntilReady();
process.send?.({ type: "ready", t: now() });

let stopping = false;
process.on("SIGTERM", () => {
  if (stopping) return;
  stopping = true;
  worker.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});

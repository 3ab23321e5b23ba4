// @ts-check
// A graphile-worker process for the benchmark: runs `noop` and `ping` jobs from BENCH_SCHEMA with the batching
// preset given in BENCH_PRESET, and reports to the parent over IPC (first no-op started, all BENCH_EXPECT no-ops
// run, each ping's start). Stops on SIGTERM.
import { EventEmitter } from "node:events";
import { run, Logger } from "graphile-worker";

const expect = Number(process.env.BENCH_EXPECT);
let count = 0;
const now = () => Number(process.hrtime.bigint()) / 1e6;

const logger = new Logger(() => (level, message) => {
  if (level === "error") process.stderr.write(`graphile-worker: ${message}\n`);
});

// Confirms to the parent that the batching preset took effect.
const events = new EventEmitter();
events.on("localQueue:init", () => process.send?.({ type: "info", key: "localQueue", value: true }));

const runner = await run({
  events,
  connectionString: process.env.DATABASE_URL,
  schema: process.env.BENCH_SCHEMA,
  concurrency: Number(process.env.BENCH_CONCURRENCY ?? 32),
  noHandleSignals: true,
  logger,
  preset: { worker: JSON.parse(process.env.BENCH_PRESET ?? "{}") },
  taskList: {
    async noop() {
      count++;
      if (count === 1) process.send?.({ type: "first", t: now() });
      if (count === expect) process.send?.({ type: "done", count, t: now() });
    },
    async ping(payload) {
      process.send?.({ type: "start", i: /** @type {{ i: number }} */ (payload).i, t: now() });
    },
  },
});
process.send?.({ type: "ready", t: now() });

let stopping = false;
process.on("SIGTERM", () => {
  if (stopping) return;
  stopping = true;
  runner.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});

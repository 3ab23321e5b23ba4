// @ts-check
// The embedded database (PGlite, `pglite:memory`) beside the Postgres server, in one process each way: the same
// client and in-process Worker, the same counts, so the line compares the databases, not process layouts. The
// server side uses its Redis doorbell as an app would; the embedded side its in-process one.
import pg from "pg";
import { SkiplockClient, Worker } from "../../dist/src/index.js";
import { DATABASE_URL, REDIS_URL, nowMs, uniqueSuffix } from "../lib/util.js";

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * @param {{ drainTasks: number, batchSize: number, enqueueOneTasks: number, concurrency: number }} config
 * @param {"embedded" | "server"} where
 */
async function measure(config, where) {
  const schema = `bench_embedded_${uniqueSuffix()}`;
  const databaseUrl = where === "embedded" ? "pglite:memory" : DATABASE_URL;
  const redisUrl = where === "embedded" ? null : REDIS_URL;
  const t0 = nowMs();
  const client = new SkiplockClient({ databaseUrl, redisUrl, schema, logger: quiet });
  try {
    await client.migrate();
    const readyMs = nowMs() - t0;

    // Enqueue, one call at a time (each its own insert and commit).
    let t = nowMs();
    for (let i = 0; i < config.enqueueOneTasks; i++) await client.createTask("noop", [i]);
    const enqueueOne = config.enqueueOneTasks / ((nowMs() - t) / 1000);

    // Enqueue in batches of batchSize (createTasks: one statement each).
    t = nowMs();
    for (let done = 0; done < config.drainTasks; done += config.batchSize) {
      const n = Math.min(config.batchSize, config.drainTasks - done);
      await client.createTasks(Array.from({ length: n }, (_, i) => ({ name: "noop", args: [done + i] })));
    }
    const enqueueBatch = config.drainTasks / ((nowMs() - t) / 1000);

    // Drain everything enqueued above with one worker.
    const total = config.enqueueOneTasks + config.drainTasks;
    const worker = new Worker({
      databaseUrl,
      redisUrl,
      schema,
      logger: quiet,
      concurrency: config.concurrency,
      tasks: { noop: () => null },
    });
    let completed = 0;
    /** @type {() => void} */
    let allDone = () => {};
    const finished = new Promise((resolve) => (allDone = () => resolve(undefined)));
    worker.on("task:completed", () => {
      if (++completed === total) allDone();
    });
    t = nowMs();
    await worker.start();
    await finished;
    const drainSeconds = (nowMs() - t) / 1000;
    await worker.stop();
    return {
      readyMs: Math.round(readyMs),
      enqueueOnePerSecond: Math.round(enqueueOne),
      enqueueBatchPerSecond: Math.round(enqueueBatch),
      drainPerSecond: Math.round(total / drainSeconds),
      drainTasks: total,
    };
  } finally {
    await client.close();
    if (where === "server") {
      const admin = new pg.Client({ connectionString: DATABASE_URL });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    }
  }
}

/**
 * The embedded line: both databases measured in turn, embedded first.
 * @param {{ drainTasks: number, batchSize: number, enqueueOneTasks: number, concurrency: number }} config
 * @param {(line: string) => void} log
 */
export async function embeddedLine(config, log) {
  log("embedded database (pglite:memory) beside the server, in one process each");
  const embedded = await measure(config, "embedded");
  const server = await measure(config, "server");
  return { embedded, server };
}

/** @param {{ embedded: Record<string, number>, server: Record<string, number> }} r */
export function embeddedTable(r) {
  /** @param {string} label @param {string} key */
  const row = (label, key) => {
    const e = r.embedded[key] ?? NaN;
    const s = r.server[key] ?? NaN;
    return `  ${label.padEnd(34)} ${String(e).padStart(10)} ${String(s).padStart(10)} ${(e / s).toFixed(2).padStart(8)}`;
  };
  return [
    `embedded database vs Postgres server, client and worker in one process (${r.embedded.drainTasks} tasks):`,
    `  ${"".padEnd(34)} ${"embedded".padStart(10)} ${"server".padStart(10)} ${"ratio".padStart(8)}`,
    row("enqueue, one call at a time (/s)", "enqueueOnePerSecond"),
    row("enqueue, createTasks batches (/s)", "enqueueBatchPerSecond"),
    row("drain, one worker (/s)", "drainPerSecond"),
    row("open + migrate (ms)", "readyMs"),
  ].join("\n");
}

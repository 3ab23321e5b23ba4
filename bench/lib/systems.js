// @ts-check
// The three systems under test behind one small interface. A Namespace is one fresh queue of one system (a new
// Postgres schema for skiplock and graphile-worker, a new queue name for BullMQ): it enqueues, starts a worker
// child process on itself, tells when that worker has drained it, and removes itself afterwards.
import { fileURLToPath } from "node:url";
import { makeWorkerUtils, Logger as GraphileLogger } from "graphile-worker";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import pg from "pg";
import { migrate, SkiplockClient, silentLogger } from "../../dist/src/index.js";
import { DATABASE_URL, REDIS_URL, WorkerChild, nowMs, pollUntil, uniqueSuffix } from "./util.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SKIPLOCK_CLI = fileURLToPath(new URL("../../dist/bin/skiplock.js", import.meta.url));
const SKIPLOCK_TASKS = fileURLToPath(new URL("../workers/skiplock-tasks.js", import.meta.url));
const GRAPHILE_WORKER = fileURLToPath(new URL("../workers/graphile.js", import.meta.url));
const BULLMQ_WORKER = fileURLToPath(new URL("../workers/bullmq.js", import.meta.url));

/**
 * @typedef {object} DrainEnd
 * @property {number} seconds  first handler start → every task done, as the system records it
 * @property {number} doneAt   monotonic ms at which the orchestrator saw the drain finished
 * @property {Record<string, number | string>} [detail]
 */

/**
 * @typedef {object} StartOptions
 * @property {number} concurrency
 * @property {number} expect  no-op tasks the worker should run before it reports "done"
 * @property {string} [cpuProfileDir]  run the worker under `node --cpu-prof` into this directory
 * @property {number} [heapEvery]  skiplock: report the V8 heap every this many no-ops (a "heap" message)
 */

/**
 * @typedef {object} Namespace
 * @property {string} id
 * @property {(name: "noop" | "ping", i: number) => Promise<void>} enqueueOne
 * @property {(name: "noop", from: number, count: number) => Promise<void>} enqueueBatch
 * @property {((tx: pg.Client, name: "ping", i: number) => Promise<void>) | null} enqueueInTransaction  enqueues on
 *   `tx`, a connection of the caller's that is inside BEGIN, as the system's docs recommend; null where the system
 *   cannot enqueue in a Postgres transaction (BullMQ)
 * @property {(o: StartOptions) => WorkerChild} startWorker
 * @property {(expect: number, child: WorkerChild, timeoutMs: number) => Promise<DrainEnd>} waitDrained
 * @property {() => Promise<void>} drop
 */

/**
 * @typedef {object} System
 * @property {"skiplock" | "graphile" | "bullmq"} name
 * @property {string} label
 * @property {string} version
 * @property {string} settings  the configuration under test, in words
 * @property {() => Promise<Namespace>} open
 */

/** A pool for the orchestrator's own queries (schema drops, completion checks). */
export const adminPool = new pg.Pool({ connectionString: DATABASE_URL, max: 3, application_name: "skiplock bench" });
adminPool.on("error", () => {});

/** @param {string} schema */
async function dropSchema(schema) {
  await adminPool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/** @param {string} spec  e.g. "graphile-worker" → its package.json version */
async function versionOf(spec) {
  const { createRequire } = await import("node:module");
  const require = createRequire(import.meta.url);
  /** @type {{ version: string }} */
  const pkg = require(`${spec}/package.json`);
  return pkg.version;
}

// ---------------------------------------------------------------------------------------------------------------
// skiplock

/** @returns {Promise<System>} */
export async function skiplockSystem() {
  /** @type {{ version: string }} */
  const pkg = JSON.parse(await (await import("node:fs/promises")).readFile(`${ROOT}package.json`, "utf8"));
  return {
    name: "skiplock",
    label: "skiplock",
    version: pkg.version,
    settings:
      "CLI `skiplock run-worker --concurrency 32` (defaults: pool 4, poll 1 s, heartbeat 5 s), Redis wake-ups on; " +
      "producer: new SkiplockClient with its defaults (pool 10)",
    async open() {
      const schema = `bench_sk_${uniqueSuffix()}`;
      await migrate({ databaseUrl: DATABASE_URL, schema });
      return skiplockNamespace(schema);
    },
  };
}

/**
 * @param {string} schema  an existing, migrated schema
 * @param {{ keep?: boolean }} [options]  keep: do not drop the schema in drop()
 * @returns {Namespace & { client: SkiplockClient, schema: string, tasks: string }}
 */
export function skiplockNamespace(schema, options = {}) {
  // The client's own defaults (a pool of 10, as graphile-worker's makeWorkerUtils and pg.Pool have): only the
  // concurrent callers use more than one connection at a time.
  const client = new SkiplockClient({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, schema, logger: silentLogger });
  const tasks = `"${schema}".tasks`;
  /** The first id enqueued since the last drain: a drain is timed over the tasks from there on. */
  /** @type {string | null} */
  let drainFrom = null;
  return {
    id: schema,
    schema,
    tasks,
    client,
    async enqueueOne(name, i) {
      await client.createTask(name, [i]);
    },
    async enqueueBatch(name, from, count) {
      const specs = [];
      for (let i = from; i < from + count; i++) specs.push({ name, args: [i] });
      const created = await client.createTasks(specs);
      drainFrom ??= created[0]?.id ?? null;
    },
    async enqueueInTransaction(tx, name, i) {
      await client.createTask(name, [i], { transaction: tx });
    },
    startWorker(o) {
      const args = [
        ...(o.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${o.cpuProfileDir}`] : []),
        SKIPLOCK_CLI,
        "run-worker",
        "--tasks",
        SKIPLOCK_TASKS,
        "--concurrency",
        String(o.concurrency),
      ];
      return new WorkerChild("skiplock", args, {
        DATABASE_URL,
        REDIS_URL,
        SKIPLOCK_SCHEMA: schema,
        SKIPLOCK_LOG_LEVEL: "warn",
        ...(o.heapEvery ? { BENCH_HEAP_EVERY: String(o.heapEvery) } : {}),
      });
    },
    async waitDrained(expect, child, timeoutMs) {
      // Both EXISTS walk a partial index (PENDING: tasks_claim_idx, PROGRESS: tasks_running_idx): cheap to poll.
      await pollUntil(
        `skiplock ${schema}: all tasks COMPLETED`,
        async () => {
          const r = await adminPool.query(
            `SELECT NOT EXISTS (SELECT 1 FROM ${tasks} WHERE status = 'PENDING')
                AND NOT EXISTS (SELECT 1 FROM ${tasks} WHERE status = 'PROGRESS') AS done`,
          );
          return r.rows[0].done === true;
        },
        timeoutMs,
        20,
        child,
      );
      const doneAt = nowMs();
      const r = await adminPool.query(
        `SELECT count(*) FILTER (WHERE status = 'COMPLETED')::int AS completed,
                count(*) FILTER (WHERE status <> 'COMPLETED')::int AS other,
                extract(epoch FROM max(finished_at) - min(started_at))::float8 AS seconds
           FROM ${tasks} WHERE id >= $1 AND name = 'noop'`,
        [drainFrom ?? "0"],
      );
      drainFrom = null;
      const row = r.rows[0];
      if (row.completed < expect || row.other > 0) {
        throw new Error(
          `skiplock ${schema}: expected ${expect} COMPLETED no-op tasks, found ${row.completed} (and ${row.other} others)`,
        );
      }
      const polled = child.firstAt === null ? NaN : (doneAt - child.firstAt) / 1000;
      return { seconds: row.seconds, doneAt, detail: { polledSeconds: polled, completed: row.completed } };
    },
    async drop() {
      await client.close();
      if (!options.keep) await dropSchema(schema);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// graphile-worker

/** The batching preset used for every graphile-worker run (see https://worker.graphile.org/docs/performance). */
export const GRAPHILE_PRESET = { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 };

const quietGraphileLogger = new GraphileLogger(() => (level, message) => {
  if (level === "error") process.stderr.write(`graphile-worker: ${message}\n`);
});

/** @returns {Promise<System>} */
export async function graphileSystem() {
  return {
    name: "graphile",
    label: "graphile-worker",
    version: await versionOf("graphile-worker"),
    settings: `run({ concurrency: 32 }) with preset.worker ${JSON.stringify(GRAPHILE_PRESET)}; addJob/addJobs via makeWorkerUtils (one reused pool, 10 connections); in a transaction, SELECT add_job(…) on the producer's connection`,
    async open() {
      const schema = `bench_gw_${uniqueSuffix()}`;
      const utils = await makeWorkerUtils({ connectionString: DATABASE_URL, schema, logger: quietGraphileLogger });
      await utils.migrate();
      const jobs = `"${schema}"._private_jobs`;
      return {
        id: schema,
        async enqueueOne(name, i) {
          await utils.addJob(name, { i });
        },
        async enqueueBatch(name, from, count) {
          const specs = [];
          for (let i = from; i < from + count; i++) specs.push({ identifier: name, payload: { i } });
          await utils.addJobs(specs);
        },
        async enqueueInTransaction(tx, name, i) {
          // graphile-worker's documented way to enqueue in a transaction: its SQL function on the same connection.
          await tx.query(`SELECT "${schema}".add_job(identifier => $1::text, payload => $2::json)`, [
            name,
            JSON.stringify({ i }),
          ]);
        },
        startWorker(o) {
          return new WorkerChild(
            "graphile",
            [...(o.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${o.cpuProfileDir}`] : []), GRAPHILE_WORKER],
            {
              DATABASE_URL,
              BENCH_SCHEMA: schema,
              BENCH_EXPECT: String(o.expect),
              BENCH_CONCURRENCY: String(o.concurrency),
              BENCH_PRESET: JSON.stringify(GRAPHILE_PRESET),
            },
          );
        },
        async waitDrained(expect, child, timeoutMs) {
          await child.waitFor(`graphile ${schema}: ${expect} handlers run`, () => child.doneAt !== null, timeoutMs);
          const doneAt = nowMs();
          // Completions are batched: also note when the jobs table is empty (graphile deletes completed jobs).
          await pollUntil(
            `graphile ${schema}: jobs table empty`,
            async () =>
              (await adminPool.query(`SELECT NOT EXISTS (SELECT 1 FROM ${jobs}) AS done`)).rows[0].done === true,
            timeoutMs,
            20,
            child,
          );
          const emptyAt = nowMs();
          const first = /** @type {number} */ (child.firstAt);
          return {
            seconds: ((child.doneAt ?? NaN) - first) / 1000,
            doneAt,
            detail: {
              tableEmptySeconds: (emptyAt - first) / 1000,
              localQueueActive: child.info.localQueue === true ? "yes" : "no",
            },
          };
        },
        async drop() {
          await utils.release();
          await dropSchema(schema);
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// BullMQ

export const BULLMQ_PREFIX = "skiplockbench";

/** ioredis-style connection options from REDIS_URL. */
export function bullConnection() {
  const u = new URL(REDIS_URL);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    db: Number(u.pathname.slice(1) || 0),
    maxRetriesPerRequest: null,
  };
}

/** @returns {Promise<System>} */
export async function bullmqSystem() {
  return {
    name: "bullmq",
    label: "BullMQ",
    version: await versionOf("bullmq"),
    settings: "new Worker(queue, fn, { concurrency: 32 }) (defaults: completed jobs kept); queue.add / queue.addBulk",
    async open() {
      const name = `bench-${uniqueSuffix()}`;
      const queue = new Queue(name, { connection: bullConnection(), prefix: BULLMQ_PREFIX });
      await queue.waitUntilReady();
      return {
        id: name,
        async enqueueOne(jobName, i) {
          await queue.add(jobName, { i });
        },
        async enqueueBatch(jobName, from, count) {
          const jobs = [];
          for (let i = from; i < from + count; i++) jobs.push({ name: jobName, data: { i } });
          await queue.addBulk(jobs);
        },
        enqueueInTransaction: null, // Redis has no share in a Postgres transaction
        startWorker(o) {
          return new WorkerChild(
            "bullmq",
            [...(o.cpuProfileDir ? ["--cpu-prof", `--cpu-prof-dir=${o.cpuProfileDir}`] : []), BULLMQ_WORKER],
            {
              REDIS_URL,
              BENCH_QUEUE: name,
              BENCH_PREFIX: BULLMQ_PREFIX,
              BENCH_EXPECT: String(o.expect),
              BENCH_CONCURRENCY: String(o.concurrency),
            },
          );
        },
        async waitDrained(expect, child, timeoutMs) {
          await child.waitFor(`bullmq ${name}: ${expect} jobs completed`, () => child.doneAt !== null, timeoutMs);
          const doneAt = nowMs();
          const completed = await queue.getCompletedCount();
          if (completed < expect)
            throw new Error(`bullmq ${name}: expected ${expect} completed jobs, found ${completed}`);
          const first = /** @type {number} */ (child.firstAt);
          return { seconds: ((child.doneAt ?? NaN) - first) / 1000, doneAt, detail: { completed } };
        },
        async drop() {
          await queue.obliterate({ force: true });
          await queue.close();
          await deleteKeys(`${BULLMQ_PREFIX}:${name}:*`);
          await deleteKeys(`${BULLMQ_PREFIX}:${name}`);
        },
      };
    },
  };
}

/** @type {Redis | null} */
let redis = null;

/** The orchestrator's own Redis connection (key cleanup, INFO). */
export function adminRedis() {
  redis ??= new Redis(REDIS_URL, { maxRetriesPerRequest: 3, lazyConnect: false });
  return redis;
}

/** @param {string} pattern */
export async function deleteKeys(pattern) {
  const r = adminRedis();
  let cursor = "0";
  do {
    const [next, keys] = await r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await r.unlink(...keys);
  } while (cursor !== "0");
}

/** CPU seconds the Redis server has used (user + sys), from INFO cpu. */
export async function redisCpu() {
  const info = await adminRedis().info("cpu");
  const num = (/** @type {string} */ k) => Number(new RegExp(`^${k}:([\\d.]+)`, "m").exec(info)?.[1] ?? NaN);
  return num("used_cpu_user") + num("used_cpu_sys");
}

export async function closeAdmin() {
  await adminPool.end();
  if (redis) await redis.quit().catch(() => {});
  redis = null;
}

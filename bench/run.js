// @ts-check
// `npm run bench`: skiplock vs graphile-worker vs BullMQ on the same Postgres and Redis, in alternating rounds,
// plus skiplock-only table-health and memory scenarios. Prints a table and writes bench/results/latest.json.
// See bench/README.md for what each number means. Measurements only: nothing here asserts a speed.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  adminPool,
  adminRedis,
  bullmqSystem,
  closeAdmin,
  deleteKeys,
  BULLMQ_PREFIX,
  graphileSystem,
  redisCpu,
  skiplockNamespace,
  skiplockSystem,
} from "./lib/systems.js";
import pg from "pg";
import { migrate } from "../dist/src/index.js";
import { embeddedLine, embeddedTable } from "./lines/embedded.js";
import { pgbouncerDrains, pgbouncerSection } from "./lines/pgbouncer.js";
import {
  DATABASE_URL,
  REDIS_URL,
  cpuOfCommand,
  median,
  nowMs,
  percentile,
  procCpu,
  procMem,
  sleep,
  uniqueSuffix,
} from "./lib/util.js";
import { dashboardLists, listsTable } from "./lines/dashboard-lists.js";

/** @typedef {import("./lib/systems.js").System} System */
/** @typedef {import("./lib/systems.js").Namespace} Namespace */
/** @typedef {import("./lib/util.js").WorkerChild} WorkerChild */

const HERE = fileURLToPath(new URL(".", import.meta.url));

// ---------------------------------------------------------------------------------------------------------------
// Options

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    rounds: { type: "string" },
    skip: { type: "string" },
    out: { type: "string" },
    profile: { type: "boolean", default: false },
    "wakes-baseline": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});

if (flags.help) {
  process.stdout.write(`usage: npm run bench -- [options]
  --quick              small counts (about a minute); writes bench/results/quick.json unless --out
  --only a,b           systems to run: skiplock, graphile, bullmq (default: all three)
  --rounds N           rounds of the comparison (default 5, quick 2)
  --skip a,b           scenarios to skip: compare, health, memory, lists, pgbouncer, wakes, embedded
  --wakes-baseline DIR the wakes line also measures the build in DIR/dist (e.g. main's), in alternating rounds
  --out FILE           where to write the JSON (default bench/results/latest.json)
  --profile            run the skiplock drain workers under node --cpu-prof (bench/results/profiles/)
`);
  process.exit(0);
}

const quick = flags.quick ?? false;
const ALL = /** @type {const} */ (["skiplock", "graphile", "bullmq"]);
const only = (flags.only ?? ALL.join(","))
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean);
for (const s of only)
  if (!ALL.includes(/** @type {any} */ (s))) throw new Error(`--only: unknown system ${s} (known: ${ALL.join(", ")})`);
const skip = new Set(
  (flags.skip ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
);
for (const s of skip)
  if (!["compare", "health", "memory", "lists", "pgbouncer", "wakes", "embedded"].includes(s)) {
    throw new Error(`--skip: unknown scenario ${s}`);
  }

const config = quick
  ? {
      rounds: 2,
      concurrency: 32,
      drainTasks: 5_000,
      batchSize: 1_000,
      enqueueOneTasks: 300,
      enqueueWarmup: 20,
      concurrentCallers: 64,
      concurrentSeconds: 0.5,
      latencySamples: 100,
      latencyWarmup: 10,
      latencyGapMs: 5,
      txSamples: 50,
      txWarmup: 10,
      healthFinishedRows: 100_000,
      healthRounds: 1,
      healthDrainTasks: 5_000,
      claimSamples: 30,
      claimBatch: 32,
      claimBacklogTasks: 20_000,
      healthLatencySamples: 50,
      memoryTasks: 30_000,
      memorySampleMs: 250,
    }
  : {
      rounds: 5,
      concurrency: 32,
      drainTasks: 20_000,
      batchSize: 1_000,
      enqueueOneTasks: 2_000,
      enqueueWarmup: 20,
      concurrentCallers: 64,
      concurrentSeconds: 1,
      latencySamples: 500,
      latencyWarmup: 20,
      latencyGapMs: 5,
      txSamples: 120,
      txWarmup: 10,
      healthFinishedRows: 1_000_000,
      healthRounds: 5,
      healthDrainTasks: 20_000,
      claimSamples: 100,
      claimBatch: 32,
      claimBacklogTasks: 100_000,
      healthLatencySamples: 200,
      memoryTasks: 200_000,
      memorySampleMs: 250,
    };
if (flags.rounds !== undefined) {
  const n = Number(flags.rounds);
  if (!Number.isInteger(n) || n < 1) throw new Error("--rounds: expected a positive integer");
  config.rounds = n;
}
const outFile = flags.out ?? `${HERE}results/${quick ? "quick" : "latest"}.json`;
const profileDir = flags.profile ? `${HERE}results/profiles` : undefined;
if (profileDir) mkdirSync(profileDir, { recursive: true });

/** @param {string} line */
function log(line) {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// Machine

function machine() {
  /** @param {string} cmd @param {string[]} args */
  const sh = (cmd, args) => {
    try {
      return execFileSync(cmd, args, { encoding: "utf8" }).trim();
    } catch {
      return "?";
    }
  };
  return {
    nproc: Number(sh("nproc", [])) || os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "?",
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/**
 * Which skiplock code ran: git HEAD, uncommitted changes under src/ and migrations/, and a digest of the built
 * dist/ (a rebuild during the run, e.g. by a test run in the same checkout, changes it).
 */
function codeIdentity() {
  const root = fileURLToPath(new URL("..", import.meta.url));
  /** @param {string[]} args */
  const git = (args) => {
    try {
      return execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim();
    } catch {
      return "";
    }
  };
  const hash = createHash("sha1");
  /** @param {string} dir */
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".js")) hash.update(path).update(readFileSync(path));
    }
  };
  try {
    walk(`${root}dist`);
  } catch {
    /* not built */
  }
  return {
    gitHead: git(["rev-parse", "--short", "HEAD"]) || "?",
    uncommitted: git(["status", "--porcelain", "--", "src", "migrations", "bin"]).split("\n").filter(Boolean).length,
    distDigest: hash.digest("hex").slice(0, 12),
  };
}

async function serverVersions() {
  const pg = (await adminPool.query("SHOW server_version")).rows[0].server_version;
  // The settings that change what the numbers mean: durability, cache size, and whether autovacuum runs at all.
  const { rows } = await adminPool.query(
    `SELECT name, setting, unit FROM pg_settings
      WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'autovacuum', 'max_wal_size')`,
  );
  /** @type {Record<string, string>} */
  const postgresSettings = {};
  for (const r of rows)
    postgresSettings[r.name] =
      r.unit === "8kB" ? `${(Number(r.setting) * 8) / 1024} MB` : r.unit ? `${r.setting} ${r.unit}` : r.setting;
  const info = await adminRedis().info("server");
  const redis = /^redis_version:(.+)$/m.exec(info)?.[1]?.trim() ?? "?";
  return { postgres: String(pg), postgresSettings, redis };
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios

/**
 * Enqueues without a worker, into a fresh namespace: one task at a time (each awaited), then from
 * `concurrentCallers` concurrent callers.
 * @param {System} sys
 */
async function enqueueWithoutWorker(sys) {
  const ns = await sys.open();
  try {
    for (let i = 0; i < config.enqueueWarmup; i++) await ns.enqueueOne("noop", i);
    const n = config.enqueueOneTasks;
    const t0 = nowMs();
    for (let i = 0; i < n; i++) await ns.enqueueOne("noop", config.enqueueWarmup + i);
    const seconds = (nowMs() - t0) / 1000;
    const enqueueOne = { tasks: n, seconds, rate: n / seconds };
    const enqueueConcurrent = await enqueueConcurrently(ns, config.enqueueWarmup + n);
    return { enqueueOne, enqueueConcurrent };
  } finally {
    await ns.drop();
  }
}

/**
 * `concurrentCallers` async callers in this process, each enqueueing one task at a time in a loop (awaiting each
 * call), for `concurrentSeconds`: no call starts after that, and the rate counts the calls made over the time from
 * the first call to the last one settling. A window rather than a count of calls keeps the cost of a slow system
 * bounded. Two calls per caller first, untimed, open the connections. No batching API is used: whatever the calls
 * share, the library shares on its own.
 * @param {Namespace} ns
 * @param {number} from  the first task number to use
 */
async function enqueueConcurrently(ns, from) {
  const callers = config.concurrentCallers;
  let next = from;
  /** @param {() => boolean} more @param {number[] | null} callMs */
  const run = (more, callMs) =>
    Promise.all(
      Array.from({ length: callers }, async () => {
        while (more()) {
          const i = next++;
          const t = nowMs();
          await ns.enqueueOne("noop", i);
          callMs?.push(nowMs() - t);
        }
      }),
    );
  const warm = from + 2 * callers;
  await run(() => next < warm, null);
  /** @type {number[]} */
  const callMs = [];
  const t0 = nowMs();
  const until = t0 + config.concurrentSeconds * 1000;
  await run(() => nowMs() < until, callMs);
  const seconds = (nowMs() - t0) / 1000;
  return {
    callers,
    tasks: callMs.length,
    seconds,
    rate: callMs.length / seconds,
    callP50Ms: percentile(callMs, 50),
    callP99Ms: percentile(callMs, 99),
  };
}

/**
 * Pre-queues `total` no-op tasks in batches; the first batch warms the connections and is not timed.
 * @param {Namespace} ns
 * @param {number} total
 */
async function prequeue(ns, total) {
  const size = config.batchSize;
  await ns.enqueueBatch("noop", 0, Math.min(size, total));
  const t0 = nowMs();
  let timed = 0;
  for (let from = size; from < total; from += size) {
    const count = Math.min(size, total - from);
    await ns.enqueueBatch("noop", from, count);
    timed += count;
  }
  const seconds = (nowMs() - t0) / 1000;
  return { tasks: timed, batchSize: size, seconds, rate: timed / seconds };
}

/**
 * Starts a worker on a namespace holding `expect` pre-queued no-ops and measures the drain: rate, the worker's CPU
 * and peak RSS, and the CPU Postgres and Redis spent meanwhile.
 * @param {Namespace} ns
 * @param {number} expect
 * @param {{ sampleMs: number, profile?: boolean, timeoutMs?: number, heapEvery?: number }} o
 * @returns {Promise<{ child: WorkerChild, drain: Record<string, any> }>}
 */
async function drain(ns, expect, o) {
  const child = ns.startWorker({
    concurrency: config.concurrency,
    expect,
    ...(o.profile && profileDir ? { cpuProfileDir: profileDir } : {}),
    ...(o.heapEvery ? { heapEvery: o.heapEvery } : {}),
  });
  child.sampleMemory(o.sampleMs);
  /** @type {{ cpu: number, pg: number, redis: number, t: number } | null} */
  let atFirst = null;
  const onFirst = async () => {
    const cpu = procCpu(child.pid);
    const pg = cpuOfCommand("postgres");
    atFirst = { cpu, pg, redis: NaN, t: nowMs() };
    atFirst.redis = await redisCpu();
  };
  /** @type {Promise<void> | null} */
  let firstRead = null;
  child.listeners.push((msg) => {
    if (msg.type === "first" && !firstRead) firstRead = onFirst();
  });
  try {
    await child.waitFor("the first task", () => child.firstAt !== null, 60_000);
    await firstRead;
    const end = await ns.waitDrained(expect, child, o.timeoutMs ?? 600_000);
    const cpu = procCpu(child.pid);
    const pgCpu = cpuOfCommand("postgres");
    const redis = await redisCpu();
    const mem = procMem(child.pid);
    const a = /** @type {{ cpu: number, pg: number, redis: number, t: number }} */ (/** @type {unknown} */ (atFirst));
    const workerCpu = cpu - a.cpu;
    return {
      child,
      drain: {
        tasks: expect,
        seconds: end.seconds,
        rate: expect / end.seconds,
        workerCpuSeconds: workerCpu,
        workerCpuMsPerKTask: (workerCpu * 1e6) / expect,
        workerCpuTotalSeconds: cpu,
        workerPeakRssMiB: mem?.hwm ?? NaN,
        workerRssAtEndMiB: mem?.rss ?? NaN,
        postgresCpuSeconds: pgCpu - a.pg,
        redisCpuSeconds: redis - a.redis,
        startupSeconds: ((child.firstAt ?? NaN) - child.spawnedAt) / 1000,
        ...(end.detail ?? {}),
      },
    };
  } catch (err) {
    await child.stop(2000);
    throw new Error(`${/** @type {Error} */ (err).message}\n--- worker output ---\n${child.tail()}`, { cause: err });
  }
}

/**
 * Runs `probe` `warmup + samples` times, each after a pause of `latencyGapMs` (the machine goes idle between
 * probes, as between the tasks of a quiet queue), and returns what the last `samples` runs returned.
 * @template T
 * @param {number} samples
 * @param {number} warmup
 * @param {(k: number) => Promise<T>} probe
 * @returns {Promise<T[]>}
 */
async function paced(samples, warmup, probe) {
  /** @type {T[]} */
  const timed = [];
  for (let k = 0; k < warmup + samples; k++) {
    await sleep(config.latencyGapMs);
    const r = await probe(k);
    if (k >= warmup) timed.push(r);
  }
  return timed;
}

/**
 * Idle latency: enqueue one `ping`, wait until its handler has started, pause, repeat.
 * @param {Namespace} ns
 * @param {WorkerChild} child
 * @param {number} samples
 * @param {number} warmup
 */
async function idleLatency(ns, child, samples, warmup) {
  child.stopSampling(); // the drain's RSS samples are taken; nothing else runs in this process between probes
  const timed = await paced(samples, warmup, async (k) => {
    const i = 10_000_000 + k;
    const t0 = nowMs();
    await ns.enqueueOne("ping", i);
    const t1 = nowMs();
    await child.waitFor(`ping ${i} to start`, () => child.starts.has(i), 15_000);
    const ts = /** @type {number} */ (child.starts.get(i));
    child.starts.delete(i);
    return { lat: ts - t0, enq: t1 - t0 };
  });
  const lat = timed.map((x) => x.lat);
  const enq = timed.map((x) => x.enq);
  return {
    samples,
    p50Ms: percentile(lat, 50),
    p90Ms: percentile(lat, 90),
    p99Ms: percentile(lat, 99),
    maxMs: Math.max(...lat),
    meanMs: lat.reduce((a, b) => a + b, 0) / lat.length,
    enqueueP50Ms: percentile(enq, 50),
    enqueueP99Ms: percentile(enq, 99),
  };
}

/**
 * Enqueue inside a transaction: on a connection of its own, the producer runs BEGIN, enqueues one `ping` the way the
 * system's docs recommend within a transaction, and COMMITs; latency runs from the COMMIT returning to the handler's
 * start. Paced like the idle-latency probes, against the same idle worker. Null for a system with no such way.
 * @param {Namespace} ns
 * @param {WorkerChild} child
 */
async function commitToStart(ns, child) {
  const enqueue = ns.enqueueInTransaction;
  if (!enqueue) return null;
  const tx = new pg.Client({ connectionString: DATABASE_URL, application_name: "skiplock bench producer" });
  tx.on("error", () => {}); // a lost connection fails the next probe
  await tx.connect();
  try {
    const started = nowMs();
    const timed = await paced(config.txSamples, config.txWarmup, async (k) => {
      const i = 20_000_000 + k;
      const t0 = nowMs();
      await tx.query("BEGIN");
      try {
        await enqueue(tx, "ping", i);
      } catch (err) {
        await tx.query("ROLLBACK");
        throw err;
      }
      const t1 = nowMs();
      await tx.query("COMMIT");
      const t2 = nowMs();
      await child.waitFor(`ping ${i} to start`, () => child.starts.has(i), 15_000);
      const ts = /** @type {number} */ (child.starts.get(i));
      child.starts.delete(i);
      return { lat: ts - t2, tx: t2 - t0, beforeCommit: ts < t1 };
    });
    const lat = timed.map((x) => x.lat);
    const txMs = timed.map((x) => x.tx);
    return {
      samples: config.txSamples,
      p50Ms: percentile(lat, 50),
      p90Ms: percentile(lat, 90),
      p99Ms: percentile(lat, 99),
      maxMs: Math.max(...lat),
      // BEGIN to COMMIT returned, the enqueue included: what the producer's transaction took.
      transactionP50Ms: percentile(txMs, 50),
      transactionP99Ms: percentile(txMs, 99),
      // Handlers that started before COMMIT was sent: a task must not run before its transaction commits.
      startedBeforeCommit: timed.filter((x) => x.beforeCommit).length,
      // The whole series, warm-up included: what the scenario adds to a run.
      seconds: (nowMs() - started) / 1000,
    };
  } catch (err) {
    return { error: /** @type {Error} */ (err).message.split("\n")[0] };
  } finally {
    await tx.end().catch(() => {});
  }
}

/**
 * The floor under any durable enqueue on this machine: a bare one-row INSERT into a one-column table, committed with
 * the server's own settings (so it waits for its WAL flush), paced like the idle-latency probes, on a connection of
 * its own; and a `SELECT 1`, the bare round trip. Measured once a round, the same for every system: it shows how
 * much of an idle-latency tail is the disk's and the machine's rather than a queue's.
 * @param {number} samples
 * @param {number} warmup
 */
async function commitFloor(samples, warmup) {
  const schema = `bench_floor_${uniqueSuffix()}`;
  const c = new pg.Client({ connectionString: DATABASE_URL, application_name: "skiplock bench floor" });
  await c.connect();
  try {
    await c.query(`CREATE SCHEMA "${schema}"`);
    await c.query(`CREATE TABLE "${schema}".t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int NOT NULL)`);
    const insert = { name: "floor_insert", text: `INSERT INTO "${schema}".t (v) VALUES ($1)` };
    const select = { name: "floor_select", text: "SELECT 1" };
    // Each probe pauses before the SELECT too, so neither statement follows the other at once.
    const timed = await paced(samples, warmup, async (k) => {
      const t0 = nowMs();
      await c.query({ ...insert, values: [k] });
      const commitMs = nowMs() - t0;
      await sleep(config.latencyGapMs);
      const t1 = nowMs();
      await c.query(select);
      return { commitMs, tripMs: nowMs() - t1 };
    });
    const commit = timed.map((x) => x.commitMs);
    const trip = timed.map((x) => x.tripMs);
    return {
      samples,
      insertP50Ms: percentile(commit, 50),
      insertP99Ms: percentile(commit, 99),
      selectP50Ms: percentile(trip, 50),
      selectP99Ms: percentile(trip, 99),
    };
  } finally {
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await c.end().catch(() => {});
  }
}

/**
 * One system's turn in a round: enqueue one at a time and from concurrent callers, batch pre-queue, drain, idle
 * latency, commit-to-start latency.
 * @param {System} sys
 */
async function session(sys) {
  const { enqueueOne, enqueueConcurrent } = await enqueueWithoutWorker(sys);
  log(
    `  ${sys.name}: enqueue one at a time ${fmt(enqueueOne.rate)}/s, ` +
      `from ${enqueueConcurrent.callers} concurrent callers ${fmt(enqueueConcurrent.rate)}/s`,
  );
  const ns = await sys.open();
  /** @type {WorkerChild | null} */
  let child = null;
  try {
    const batch = await prequeue(ns, config.drainTasks);
    log(`  ${sys.name}: batch enqueue ${fmt(batch.rate)}/s`);
    const d = await drain(ns, config.drainTasks, { sampleMs: 100, profile: sys.name === "skiplock" });
    child = d.child;
    log(
      `  ${sys.name}: drain ${fmt(d.drain.rate)}/s, worker CPU ${d.drain.workerCpuSeconds.toFixed(2)} s, ` +
        `peak RSS ${d.drain.workerPeakRssMiB.toFixed(0)} MiB, postgres CPU ${d.drain.postgresCpuSeconds.toFixed(2)} s`,
    );
    await sleep(500); // let the last completions and any batched writes settle: the worker is idle from here on
    // The drain left thousands of dirty pages; write them out now, so that the idle-latency probes do not share the
    // disk with whatever checkpoint they would otherwise trigger or meet (the same for every system).
    await adminPool.query("CHECKPOINT").catch((err) => log(`CHECKPOINT refused (${err.message}); going on`));
    const latency = await idleLatency(ns, child, config.latencySamples, config.latencyWarmup);
    log(`  ${sys.name}: idle latency p50 ${latency.p50Ms.toFixed(2)} ms, p99 ${latency.p99Ms.toFixed(2)} ms`);
    const txLatency = await commitToStart(ns, child);
    if (txLatency && "error" in txLatency) log(`  ${sys.name}: enqueue in a transaction failed: ${txLatency.error}`);
    else if (txLatency)
      log(`  ${sys.name}: commit to start p50 ${txLatency.p50Ms.toFixed(2)} ms, p99 ${txLatency.p99Ms.toFixed(2)} ms`);
    return { enqueueOne, enqueueConcurrent, batch, drain: d.drain, latency, ...(txLatency ? { txLatency } : {}) };
  } finally {
    await child?.stop();
    await ns.drop();
  }
}

/** @param {System[]} systems */
async function compare(systems) {
  /** @type {{ round: number, order: string[], floor: Awaited<ReturnType<typeof commitFloor>>, results: Record<string, any>, errors: Record<string, string> }[]} */
  const rounds = [];
  for (let r = 0; r < config.rounds; r++) {
    // Rotate the order each round so no system always runs first (or right after the same one).
    const order = systems.map((_, k) => /** @type {System} */ (systems[(k + r) % systems.length]));
    log(`round ${r + 1}/${config.rounds}: ${order.map((s) => s.name).join(", ")}`);
    /** @type {Record<string, any>} */
    const results = {};
    /** @type {Record<string, string>} */
    const errors = {};
    const floor = await commitFloor(config.latencySamples, config.latencyWarmup);
    log(
      `  floor: one-row INSERT p50 ${floor.insertP50Ms.toFixed(2)} ms, p99 ${floor.insertP99Ms.toFixed(2)} ms; ` +
        `SELECT 1 p50 ${floor.selectP50Ms.toFixed(2)} ms, p99 ${floor.selectP99Ms.toFixed(2)} ms`,
    );
    for (const sys of order) {
      try {
        results[sys.name] = await session(sys);
      } catch (err) {
        errors[sys.name] = /** @type {Error} */ (err).message;
        log(`  ${sys.name}: FAILED: ${errors[sys.name]}`);
      }
    }
    rounds.push({ round: r + 1, order: order.map((s) => s.name), floor, results, errors });
  }
  return rounds;
}

/**
 * Claim latency and drain rate on an empty tasks table vs one holding `healthFinishedRows` COMPLETED rows.
 */
async function tableHealth() {
  const n = config.healthFinishedRows;
  const emptySchema = `bench_sk_empty_${uniqueSuffix()}`;
  const fullSchema = `bench_sk_full_${uniqueSuffix()}`;
  await migrate({ databaseUrl: DATABASE_URL, schema: emptySchema });
  await migrate({ databaseUrl: DATABASE_URL, schema: fullSchema });
  const t0 = nowMs();
  // Finished rows as a long-running deployment leaves them, written in one statement.
  await adminPool.query(
    `INSERT INTO "${fullSchema}".tasks
       (name, args, queue, status, result, max_retries, attempt, worker_id, run_at, created_at, updated_at,
        started_at, finished_at, heartbeat_at, duration)
     SELECT 'noop', jsonb_build_array(g), 'default', 'COMPLETED', 'null', 0, 1, 'old-worker',
            now() - interval '1 day' + g * interval '50 ms', now() - interval '1 day' + g * interval '50 ms',
            now() - interval '1 day' + g * interval '50 ms', now() - interval '1 day' + g * interval '50 ms',
            now() - interval '1 day' + g * interval '50 ms' + interval '2 ms',
            now() - interval '1 day' + g * interval '50 ms', 0.002
       FROM generate_series(1, $1::int) AS g`,
    [n],
  );
  const insertSeconds = (nowMs() - t0) / 1000;
  // What autovacuum would have done by the time a table had grown this big.
  await adminPool.query(`VACUUM ANALYZE "${fullSchema}".tasks`);
  await adminPool.query(`VACUUM ANALYZE "${emptySchema}".tasks`);
  // The bulk load left a few hundred MB of dirty pages and WAL: flush them now, so the first rounds on the full
  // table do not share the machine with a checkpoint the load caused.
  await adminPool
    .query("CHECKPOINT")
    .catch((err) => log(`table health: CHECKPOINT refused (${err.message}); going on`));
  // Summed over the table's partitions (a partitioned table has no storage of its own).
  const size = (
    await adminPool.query(
      `SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) AS s FROM pg_partition_tree('"${fullSchema}".tasks')`,
    )
  ).rows[0].s;
  log(`table health: ${fmt(n)} finished rows inserted in ${insertSeconds.toFixed(1)} s (${size} with indexes)`);

  // The claim statement itself, timed from here. It is internal to skiplock, so it is loaded by path at run time
  // and this scenario reports no claim timings if the module has moved.
  /** @type {ClaimFn | null} */
  let claimTasks = null;
  const claimModule = "../dist/src/sql/claim.js";
  try {
    claimTasks = (await import(claimModule)).claimTasks ?? null;
  } catch {
    log("table health: dist/src/sql/claim.js not found; skipping the direct claim timings");
  }

  const tables = { empty: skiplockNamespace(emptySchema), full: skiplockNamespace(fullSchema) };
  // The timed claims run on one connection of their own, set up as a worker's claim connection is
  // (Store.claimConnection: asynchronous commit), so what is timed is the claim as a worker pays it, not a WAL flush
  // a worker's claim never waits for. Connected here, so no timed claim includes opening it.
  const claimConnection = new pg.Client({
    connectionString: DATABASE_URL,
    application_name: "skiplock bench claims",
    options: "-c synchronous_commit=off",
  });
  claimConnection.on("error", () => {}); // a lost connection fails the next claim, which ends the scenario
  await claimConnection.connect();
  const autovacuumOn = (await adminPool.query("SHOW autovacuum")).rows[0].autovacuum === "on";
  if (!autovacuumOn)
    log("table health: autovacuum is off on this server; the scenario vacuums both tables between rounds");
  /** @type {Record<string, any>[]} */
  const rounds = [];
  try {
    // One unmeasured drain on each table first: the rounds compare the tables as a running deployment finds them,
    // not the first passes over a freshly loaded one (in trial runs the first one or two drains on the full table
    // were the slowest of all, the later ones level with the empty table).
    for (const ns of [tables.empty, tables.full]) {
      await prequeue(ns, config.healthDrainTasks);
      const d = await drain(ns, config.healthDrainTasks, { sampleMs: 250 });
      await d.child.stop();
      if (!autovacuumOn) await adminPool.query(`VACUUM ${ns.tasks}`);
    }
    for (let r = 0; r < config.healthRounds; r++) {
      /** @type {("empty" | "full")[]} */
      const order = r % 2 === 0 ? ["empty", "full"] : ["full", "empty"];
      /** @type {Record<string, Record<string, any>>} */
      const claims = {};
      if (claimTasks) {
        // Inserted directly: these are claimed here, not by a worker, so they are not part of the drains below.
        // The two tables' claims alternate one by one, so a slow moment of the machine falls on both alike.
        for (const which of order) await insertPending(tables[which], config.claimSamples * config.claimBatch);
        const timed = await timeClaims(
          claimTasks,
          claimConnection,
          order.map((which) => tables[which]),
        );
        order.forEach((which, i) => (claims[which] = /** @type {Record<string, any>} */ (timed[i])));
      }
      for (const which of order) {
        const ns = tables[which];
        /** @type {Record<string, any>} */
        const result = { round: r + 1, table: which };
        if (claims[which]) result.claim = claims[which];
        const batch = await prequeue(ns, config.healthDrainTasks);
        const d = await drain(ns, config.healthDrainTasks, { sampleMs: 250 });
        try {
          await sleep(500);
          result.latency = await idleLatency(ns, d.child, config.healthLatencySamples, config.latencyWarmup);
        } finally {
          await d.child.stop();
        }
        result.batch = batch;
        result.drain = d.drain;
        rounds.push(result);
        // Where the server runs no autovacuum, do its work between rounds (untimed), or every round would leave its
        // dead rows to the next and the tables would be compared in a state no deployment runs in.
        if (!autovacuumOn) await adminPool.query(`VACUUM ${ns.tasks}`);
        log(
          `  ${which}: ${result.claim ? `claim(${config.claimBatch}) p50 ${result.claim.p50Ms.toFixed(2)} ms p99 ${result.claim.p99Ms.toFixed(2)} ms, ` : ""}` +
            `drain ${fmt(d.drain.rate)}/s, idle latency p50 ${result.latency.p50Ms.toFixed(2)} ms`,
        );
      }
    }
    /** @type {Record<string, any> | null} */
    let backlog = null;
    /** @type {string | null} */
    let plan = null;
    if (claimTasks) {
      // The same claim with a large backlog of due tasks, in the table that also holds the finished rows.
      const ns = tables.full;
      await insertPending(ns, config.claimBacklogTasks);
      backlog = {
        pending: config.claimBacklogTasks,
        finishedRows: n,
        ...(await timeClaims(claimTasks, claimConnection, [ns]))[0],
      };
      plan = await claimPlan(claimTasks, ns);
      await adminPool.query(`DELETE FROM ${ns.tasks} WHERE status IN ('PENDING', 'PROGRESS')`);
      log(
        `  claim(${config.claimBatch}) with ${fmt(config.claimBacklogTasks)} pending: p50 ${backlog.p50Ms.toFixed(2)} ms; plan: ${plan}`,
      );
    }
    return {
      finishedRows: n,
      insertSeconds,
      tableSize: size,
      rounds,
      claimWithBacklog: backlog,
      claimPlanWithBacklog: plan,
    };
  } finally {
    await claimConnection.end().catch(() => {});
    await tables.empty.drop();
    await tables.full.drop();
  }
}

/**
 * @typedef {(q: import("pg").Pool | import("pg").Client, tasks: string, p: { queues: string[], limit: number, workerId: string, defaultMaxRetries: number }) => Promise<unknown[]>} ClaimFn
 */

/**
 * Adds `count` due tasks in batches, without a worker in sight.
 * @param {ReturnType<typeof skiplockNamespace>} ns
 * @param {number} count
 */
async function insertPending(ns, count) {
  for (let from = 0; from < count; from += config.batchSize) {
    const n = Math.min(config.batchSize, count - from);
    await ns.client.createTasks(Array.from({ length: n }, (_, i) => ({ name: "noop", args: [from + i] })));
  }
}

/**
 * Times `claimSamples` sequential claims of `claimBatch` tasks on each namespace, taking turns claim by claim (the
 * order of each turn alternates), then marks what was claimed COMPLETED. Returns one result per namespace.
 * @param {ClaimFn} claimTasks
 * @param {import("pg").Client} claimConnection the scenario's claim connection (see health)
 * @param {ReturnType<typeof skiplockNamespace>[]} namespaces
 */
async function timeClaims(claimTasks, claimConnection, namespaces) {
  const k = config.claimSamples;
  const b = config.claimBatch;
  /** @type {number[][]} */
  const ms = namespaces.map(() => []);
  for (let s = 0; s < k; s++) {
    for (let j = 0; j < namespaces.length; j++) {
      const i = s % 2 === 0 ? j : namespaces.length - 1 - j;
      const ns = /** @type {ReturnType<typeof skiplockNamespace>} */ (namespaces[i]);
      const t = nowMs();
      const rows = await claimTasks(claimConnection, ns.tasks, {
        queues: ["default"],
        limit: b,
        workerId: "bench-claim",
        defaultMaxRetries: 0,
      });
      /** @type {number[]} */ (ms[i]).push(nowMs() - t);
      if (rows.length !== b) throw new Error(`claim returned ${rows.length} rows, expected ${b}`);
    }
  }
  for (const ns of namespaces) {
    await adminPool.query(
      `UPDATE ${ns.tasks} SET status = 'COMPLETED', finished_at = now(), updated_at = now()
        WHERE worker_id = 'bench-claim' AND status = 'PROGRESS'`,
    );
  }
  return ms.map((m) => ({
    batch: b,
    samples: k,
    p50Ms: percentile(m, 50),
    p99Ms: percentile(m, 99),
    maxMs: Math.max(...m),
  }));
}

/**
 * The plan of skiplock's own claim statement: its text and parameters are captured by handing claimTasks a
 * recording stand-in for the pool, then run under EXPLAIN ANALYZE in a transaction that is rolled back.
 * @param {ClaimFn} claimTasks
 * @param {ReturnType<typeof skiplockNamespace>} ns
 */
async function claimPlan(claimTasks, ns) {
  /** @type {{ text: string, values: unknown[] } | null} */
  let captured = null;
  const recorder = {
    /** @param {{ text: string, values: unknown[] }} cfg */
    async query(cfg) {
      captured = { text: cfg.text, values: cfg.values };
      return { rows: [], rowCount: 0 };
    },
  };
  await claimTasks(/** @type {any} */ (recorder), ns.tasks, {
    queues: ["default"],
    limit: config.claimBatch,
    workerId: "bench-explain",
    defaultMaxRetries: 0,
  });
  const stmt = /** @type {{ text: string, values: unknown[] } | null} */ (captured);
  if (!stmt) return "?";
  const client = await adminPool.connect();
  try {
    await client.query("BEGIN");
    const r = await client.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${stmt.text}`, stmt.values);
    const root = r.rows[0]["QUERY PLAN"][0];
    return `${summarizePlan(root.Plan)} (${root["Execution Time"].toFixed(2)} ms)`;
  } finally {
    await client.query("ROLLBACK").catch(() => {});
    client.release();
  }
}

/** @param {any} node @returns {string} */
function summarizePlan(node) {
  const name = `${node["Node Type"]}${node["Index Name"] ? ` using ${node["Index Name"]}` : ""}`;
  /** @type {string[]} */
  const children = (node.Plans ?? []).map(summarizePlan);
  if (children.length === 0) return name;
  if (children.length === 1) return `${name} > ${children[0]}`;
  return `${name} (${children.join("; ")})`;
}

/** RSS of one skiplock worker across a long drain. */
async function memory() {
  const sys = await skiplockSystem();
  const ns = await sys.open();
  try {
    const n = config.memoryTasks;
    const batch = await prequeue(ns, n);
    log(`memory: ${fmt(n)} tasks pre-queued (${fmt(batch.rate)}/s)`);
    const d = await drain(ns, n, {
      sampleMs: config.memorySampleMs,
      timeoutMs: 900_000,
      heapEvery: Math.max(1, Math.floor(n / 20)),
    });
    const child = d.child;
    try {
      const doneAt = nowMs();
      await sleep(3000);
      const idle = procMem(child.pid);
      child.stopSampling();
      const first = /** @type {number} */ (child.firstAt);
      const during = child.samples.filter((s) => s.t >= first && s.t <= doneAt);
      const rssAt = (/** @type {number} */ t) => {
        let best = child.samples[0];
        for (const s of child.samples) if (s.t <= t) best = s;
        return best?.rss ?? NaN;
      };
      const deciles = Array.from({ length: 11 }, (_, k) => rssAt(first + ((doneAt - first) * k) / 10));
      // After the first tenth: V8's young generation has reached its full size by then (it grows with the
      // allocation rate), so what moves from there on is what the tasks themselves leave behind.
      const tenth = first + (doneAt - first) / 10;
      const rest = child.samples.filter((s) => s.t >= tenth && s.t <= doneAt).map((s) => s.rss);
      return {
        tasks: n,
        drain: d.drain,
        rssStartMiB: rssAt(first),
        rssPeakMiB: Math.max(d.drain.workerPeakRssMiB, ...during.map((s) => s.rss)),
        rssEndMiB: rssAt(doneAt),
        rssAfterIdle3sMiB: idle?.rss ?? NaN,
        rssDecilesMiB: deciles,
        rssAfterFirstTenthMiB: {
          min: Math.min(...rest),
          max: Math.max(...rest),
          endMinusTenth: rssAt(doneAt) - (deciles[1] ?? NaN),
        },
        // The worker's V8 heap every twentieth of the drain, as it reported it: what JavaScript keeps, apart from
        // what the allocator and the threads hold.
        oldSpaceMiB: child.heap.map((h) => h.oldSpaceMiB),
        heapTotalMiB: child.heap.map((h) => h.heapTotalMiB),
        samples: child.samples.map((s) => ({
          tSeconds: Math.round((s.t - first) / 10) / 100,
          rssMiB: Math.round(s.rss * 10) / 10,
        })),
      };
    } finally {
      await child.stop();
    }
  } finally {
    await ns.drop();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Summary and table

/** @param {number} x */
function signed(x) {
  return `${x >= 0 ? "+" : ""}${x.toFixed(1)}`;
}

/** @param {number} x */
function fmt(x) {
  if (!Number.isFinite(x)) return "-";
  if (Math.abs(x) >= 100) return Math.round(x).toLocaleString("en-US");
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/**
 * The metrics of the comparison table: where each lives in a session result, and which way is better.
 * `floor`: a peer median below it is under the measurement's resolution, and no ratio is printed against it.
 * @type {{ key: string, label: string, get: (s: any) => number, better: "higher" | "lower", floor?: number }[]}
 */
const METRICS = [
  {
    key: "drainRate",
    label: `drain ${fmtK(config.drainTasks)} no-ops @${config.concurrency} (tasks/s)`,
    get: (s) => s.drain.rate,
    better: "higher",
  },
  {
    key: "drainWorkerCpu",
    label: "  worker CPU during drain (s)",
    get: (s) => s.drain.workerCpuSeconds,
    better: "lower",
    floor: 0.05,
  },
  {
    key: "drainWorkerCpuPerK",
    label: "  worker CPU per 1k tasks (ms)",
    get: (s) => s.drain.workerCpuMsPerKTask,
    better: "lower",
  },
  { key: "drainPeakRss", label: "  worker peak RSS (MiB)", get: (s) => s.drain.workerPeakRssMiB, better: "lower" },
  {
    key: "drainPostgresCpu",
    label: "  Postgres CPU during drain (s)",
    get: (s) => s.drain.postgresCpuSeconds,
    better: "lower",
    floor: 0.05,
  },
  {
    key: "drainRedisCpu",
    label: "  Redis CPU during drain (s)",
    get: (s) => s.drain.redisCpuSeconds,
    better: "lower",
    floor: 0.05,
  },
  { key: "latencyP50", label: "idle latency p50 (ms)", get: (s) => s.latency.p50Ms, better: "lower" },
  { key: "latencyP99", label: "idle latency p99 (ms)", get: (s) => s.latency.p99Ms, better: "lower" },
  {
    key: "txLatencyP50",
    label: "enqueue in a transaction, commit to start p50 (ms)",
    get: (s) => s.txLatency?.p50Ms ?? NaN,
    better: "lower",
  },
  {
    key: "txLatencyP99",
    label: "enqueue in a transaction, commit to start p99 (ms)",
    get: (s) => s.txLatency?.p99Ms ?? NaN,
    better: "lower",
  },
  { key: "enqueueOneRate", label: "enqueue one at a time (tasks/s)", get: (s) => s.enqueueOne.rate, better: "higher" },
  {
    key: "enqueueConcurrentRate",
    label: `enqueue from ${config.concurrentCallers} concurrent callers (tasks/s)`,
    get: (s) => s.enqueueConcurrent.rate,
    better: "higher",
  },
  {
    key: "batchRate",
    label: `batch enqueue x${fmtK(config.batchSize)} (tasks/s)`,
    get: (s) => s.batch.rate,
    better: "higher",
  },
];

/** @param {number} n */
function fmtK(n) {
  return n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n);
}

/**
 * Medians over rounds per system and metric, and skiplock/peer ratios of those medians.
 * @param {{ results: Record<string, any> }[]} rounds
 * @param {string[]} names
 */
function summarize(rounds, names) {
  /** @type {Record<string, Record<string, { median: number, min: number, max: number, n: number }>>} */
  const medians = {};
  for (const name of names) {
    medians[name] = {};
    for (const m of METRICS) {
      const vals = rounds
        .map((r) => r.results[name])
        .filter(Boolean)
        .map(m.get)
        .filter(Number.isFinite);
      /** @type {Record<string, any>} */ (medians[name])[m.key] = {
        median: median(vals),
        min: Math.min(...vals),
        max: Math.max(...vals),
        n: vals.length,
      };
    }
  }
  /** @type {Record<string, Record<string, number>>} */
  const ratios = {};
  if (medians.skiplock) {
    for (const peer of names.filter((n) => n !== "skiplock")) {
      ratios[peer] = {};
      for (const m of METRICS) {
        const peerMedian = medians[peer]?.[m.key]?.median ?? NaN;
        /** @type {Record<string, number>} */ (ratios[peer])[m.key] =
          peerMedian < (m.floor ?? 0) ? NaN : (medians.skiplock[m.key]?.median ?? NaN) / peerMedian;
      }
    }
  }
  return { medians, ratios };
}

/**
 * @param {string[][]} rows
 * @param {("l" | "r")[]} align
 */
function table(rows, align) {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length))) ?? [];
  return rows
    .map((r, i) => {
      const line = r
        .map((cell, c) => (align[c] === "l" ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0)))
        .join("  ");
      return i === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("  ")}` : line;
    })
    .join("\n");
}

/**
 * The machine's floor, per round and as medians: what a durable enqueue and a round trip cost here with no queue.
 * @param {{ floor: Awaited<ReturnType<typeof commitFloor>> }[]} rounds
 */
function floorLines(rounds) {
  /** @param {string} label @param {(f: Awaited<ReturnType<typeof commitFloor>>) => number} get */
  const line = (label, get) =>
    `  ${label.padEnd(22)} ${rounds.map((r) => fmt(get(r.floor))).join("  ")}   (median ${fmt(median(rounds.map((r) => get(r.floor))))})`;
  return [
    "the machine's floor per round, no queue involved, paced like the idle-latency probes (ms):",
    line("one-row INSERT p50", (f) => f.insertP50Ms),
    line("one-row INSERT p99", (f) => f.insertP99Ms),
    line("SELECT 1 p50", (f) => f.selectP50Ms),
    line("SELECT 1 p99", (f) => f.selectP99Ms),
  ].join("\n");
}

/**
 * @param {ReturnType<typeof summarize>} summary
 * @param {System[]} systems
 */
function comparisonTable(summary, systems) {
  const peers = systems.filter((s) => s.name !== "skiplock" && summary.medians.skiplock);
  const head = [
    "metric (median of rounds)",
    "better",
    ...systems.map((s) => s.label),
    ...peers.map((p) => `skiplock/${p.label}`),
  ];
  const rows = [head];
  for (const m of METRICS) {
    rows.push([
      m.label,
      m.better,
      ...systems.map((s) => fmt(summary.medians[s.name]?.[m.key]?.median ?? NaN)),
      ...peers.map((p) => {
        const r = summary.ratios[p.name]?.[m.key] ?? NaN;
        if (Number.isFinite(r)) return `${r.toFixed(2)}x`;
        // "-": a side with no value (the peer cannot do this, or every session failed); "n/a": below resolution.
        const measured = [summary.medians.skiplock, summary.medians[p.name]].every((x) =>
          Number.isFinite(x?.[m.key]?.median ?? NaN),
        );
        return measured ? "n/a" : "-";
      }),
    ]);
  }
  return table(rows, [
    "l",
    "l",
    ...systems.map(() => /** @type {const} */ ("r")),
    ...peers.map(() => /** @type {const} */ ("r")),
  ]);
}

/** @param {{ rounds: Record<string, any>[], claimWithBacklog: Record<string, any> | null, claimPlanWithBacklog: string | null }} health */
function healthTable(health) {
  /** @param {"empty" | "full"} which @param {(r: any) => number} get */
  const med = (which, get) =>
    median(
      health.rounds
        .filter((r) => r.table === which)
        .map(get)
        .filter(Number.isFinite),
    );
  /** @type {[string, (r: any) => number][]} */
  const rowsDef = [
    [`claim of ${config.claimBatch}, p50 (ms)`, (r) => r.claim?.p50Ms ?? NaN],
    [`claim of ${config.claimBatch}, p99 (ms)`, (r) => r.claim?.p99Ms ?? NaN],
    [`drain ${fmtK(config.healthDrainTasks)} no-ops @${config.concurrency} (tasks/s)`, (r) => r.drain.rate],
    ["idle latency p50 (ms)", (r) => r.latency.p50Ms],
    ["idle latency p99 (ms)", (r) => r.latency.p99Ms],
  ];
  const rows = [
    ["skiplock, median of rounds", "empty table", `${fmtK(config.healthFinishedRows)} finished rows`, "full/empty"],
  ];
  for (const [label, get] of rowsDef) {
    const e = med("empty", get);
    const f = med("full", get);
    rows.push([label, fmt(e), fmt(f), Number.isFinite(e / f) ? `${(f / e).toFixed(2)}x` : "-"]);
  }
  // Within a round the two tables' claims take turns claim by claim and their drains run seconds apart, so a ratio
  // taken inside each round is less exposed to the machine's slow spells than the ratio of two medians, each drawn
  // from its own five moments.
  /** @param {(r: any) => number} get */
  const pairedRatio = (get) => {
    const ratios = [];
    for (let r = 1; r <= config.healthRounds; r++) {
      const e = health.rounds.find((x) => x.round === r && x.table === "empty");
      const f = health.rounds.find((x) => x.round === r && x.table === "full");
      const ratio = e && f ? get(f) / get(e) : NaN;
      if (Number.isFinite(ratio)) ratios.push(ratio);
    }
    return ratios.length > 1 ? `${median(ratios).toFixed(2)}x` : null;
  };
  const pairedClaim = pairedRatio((r) => r.claim?.p50Ms ?? NaN);
  if (pairedClaim)
    rows.push([`claim of ${config.claimBatch} p50, full/empty within each round (median)`, "", "", pairedClaim]);
  const pairedDrain = pairedRatio((r) => r.drain.rate);
  if (pairedDrain) rows.push(["drain, full/empty within each round (median)", "", "", pairedDrain]);
  const b = health.claimWithBacklog;
  if (b) {
    rows.push([`claim of ${config.claimBatch} with ${fmtK(b.pending)} pending, p50 (ms)`, "", fmt(b.p50Ms), ""]);
    rows.push([`claim of ${config.claimBatch} with ${fmtK(b.pending)} pending, p99 (ms)`, "", fmt(b.p99Ms), ""]);
  }
  return table(rows, ["l", "r", "r", "r"]);
}

// ---------------------------------------------------------------------------------------------------------------
// Main

/** The session holding the run lock; it is released when this connection closes, or when the process dies. */
/** @type {pg.Client | null} */
let lockClient = null;

/**
 * One benchmark run at a time on a database: two at once would measure each other, and one run's cleanup of
 * leftovers would drop the other's live schemas. A session-level advisory lock serializes runs; a run that died
 * loses it with its connection.
 */
async function acquireRunLock() {
  const client = new pg.Client({
    connectionString: DATABASE_URL,
    application_name: `skiplock bench run pid ${process.pid}`,
  });
  client.on("error", () => {});
  await client.connect();
  const key = "hashtext('skiplock.bench.run')";
  const got = (await client.query(`SELECT pg_try_advisory_lock(${key}) AS ok`)).rows[0].ok;
  if (!got) {
    const holder = await client.query(
      `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.objid = (${key})::oid AND l.granted LIMIT 1`,
    );
    log(
      `another benchmark run holds the database (${holder.rows[0]?.application_name ?? "?"}); waiting for it to finish`,
    );
    await client.query(`SELECT pg_advisory_lock(${key})`);
    log("the other run finished; starting");
  }
  lockClient = client;
}

async function cleanupLeftovers() {
  // Schemas and keys a previous, interrupted run left behind (a live run would hold the run lock).
  const r = await adminPool.query(
    "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench\\_sk\\_%' OR nspname LIKE 'bench\\_gw\\_%' OR nspname LIKE 'bench\\_floor\\_%'",
  );
  for (const { nspname } of r.rows) await adminPool.query(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`);
  await deleteKeys(`${BULLMQ_PREFIX}:*`);
  if (r.rows.length > 0) log(`dropped ${r.rows.length} schema(s) left by an earlier run`);
}

async function main() {
  const startedAt = new Date();
  const t0 = nowMs();
  /** @type {System[]} */
  const systems = [];
  if (only.includes("skiplock")) systems.push(await skiplockSystem());
  if (only.includes("graphile")) systems.push(await graphileSystem());
  if (only.includes("bullmq")) systems.push(await bullmqSystem());
  const m = { ...machine(), ...(await serverVersions()) };
  const code = codeIdentity();
  log(
    `machine: ${m.nproc} cores (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, Postgres ${m.postgres}, Redis ${m.redis}`,
  );
  log(`systems: ${systems.map((s) => `${s.label} ${s.version}`).join(", ")}${quick ? " (quick)" : ""}`);
  await acquireRunLock();
  await cleanupLeftovers();

  /** @type {Record<string, any>} */
  const out = {
    format: "skiplock-bench/1",
    startedAt: startedAt.toISOString(),
    quick,
    argv: process.argv.slice(2),
    machine: m,
    connections: { postgres: DATABASE_URL.replace(/\/\/([^:/@]*):[^@/]*@/, "//$1:***@"), redis: REDIS_URL },
    systems: Object.fromEntries(
      systems.map((s) => [s.name, { label: s.label, version: s.version, settings: s.settings }]),
    ),
    config,
    code,
  };

  const sections = [];
  if (!skip.has("compare")) {
    const rounds = await compare(systems);
    const summary = summarize(
      rounds,
      systems.map((s) => s.name),
    );
    out.compare = { rounds, ...summary };
    /** @param {string} title @param {(x: any) => number} get */
    const perRound = (title, get) =>
      `${title}:\n${systems
        .map(
          (s) =>
            `  ${s.label.padEnd(16)} ${rounds.map((r) => (r.results[s.name] ? fmt(get(r.results[s.name])) : "failed")).join("  ")}`,
        )
        .join("\n")}`;
    const failures = rounds.flatMap((r) => [
      ...Object.entries(r.errors).map(([name, e]) => `  round ${r.round} ${name}: ${e.split("\n")[0]}`),
      // A failed commit-to-start probe leaves the rest of its session measured.
      ...Object.entries(r.results)
        .filter(([, x]) => x.txLatency?.error !== undefined)
        .map(([name, x]) => `  round ${r.round} ${name}, enqueue in a transaction: ${x.txLatency.error}`),
    ]);
    sections.push(
      [
        comparisonTable(summary, systems),
        ...(systems.length > 1 && systems.some((s) => s.name === "skiplock")
          ? [
              "ratio = skiplock median / peer median: where higher is better a ratio above 1 favours skiplock, where lower is\n" +
                "better a ratio below 1 does. n/a: the peer's value is below what /proc and INFO can resolve (about 0.05 s).\n" +
                "-: not measured (BullMQ cannot enqueue inside a Postgres transaction) or every session of it failed.",
            ]
          : []),
        perRound("drain rate per round (tasks/s)", (x) => x.drain.rate),
        perRound("idle latency p50 per round (ms)", (x) => x.latency.p50Ms),
        perRound("idle latency p99 per round (ms)", (x) => x.latency.p99Ms),
        perRound("enqueue in a transaction, commit to start p50 per round (ms)", (x) => x.txLatency?.p50Ms ?? NaN),
        perRound(
          `enqueue from ${config.concurrentCallers} concurrent callers per round (tasks/s)`,
          (x) => x.enqueueConcurrent.rate,
        ),
        floorLines(rounds),
        ...(failures.length > 0 ? [`FAILED (left out of the medians):\n${failures.join("\n")}`] : []),
      ].join("\n\n"),
    );
  }
  if (only.includes("skiplock") && !skip.has("health")) {
    const health = await tableHealth();
    out.health = health;
    sections.push(
      `${healthTable(health)}${health.claimPlanWithBacklog ? `\n(claim plan with the backlog, full table: ${health.claimPlanWithBacklog})` : ""}`,
    );
  }
  if (only.includes("skiplock") && !skip.has("memory")) {
    const mem = await memory();
    out.memory = mem;
    sections.push(
      `skiplock worker RSS across a ${fmtK(mem.tasks)}-task drain @${config.concurrency} (${fmt(mem.drain.rate)} tasks/s, ` +
        `${mem.drain.workerCpuSeconds.toFixed(1)} s CPU):\n` +
        `  start ${mem.rssStartMiB.toFixed(1)} MiB, peak ${mem.rssPeakMiB.toFixed(1)} MiB, end ${mem.rssEndMiB.toFixed(1)} MiB, ` +
        `after 3 s idle ${mem.rssAfterIdle3sMiB.toFixed(1)} MiB\n` +
        `  at each tenth of the drain: ${mem.rssDecilesMiB.map((x) => x.toFixed(0)).join(" ")} MiB\n` +
        `  from the first tenth to the end: between ${mem.rssAfterFirstTenthMiB.min.toFixed(1)} and ` +
        `${mem.rssAfterFirstTenthMiB.max.toFixed(1)} MiB, end minus first tenth ${signed(mem.rssAfterFirstTenthMiB.endMinusTenth)} MiB\n` +
        `  V8 old space at each twentieth (the worker's own report): ${mem.oldSpaceMiB.map((x) => x.toFixed(0)).join(" ")} MiB` +
        ` (heap total ${fmt(Math.min(...mem.heapTotalMiB))}–${fmt(Math.max(...mem.heapTotalMiB))} MiB)`,
    );
  }
  if (only.includes("skiplock") && !skip.has("embedded")) {
    out.embedded = await embeddedLine(config, log);
    sections.push(embeddedTable(out.embedded));
  }
  if (only.includes("skiplock") && !skip.has("lists")) {
    out.lists = await dashboardLists({ finished: quick ? 100_000 : 1_000_000, samples: quick ? 10 : 30, log });
    sections.push(listsTable(out.lists));
  }
  if (only.includes("skiplock") && !skip.has("pgbouncer")) {
    const drains = { rounds: config.rounds, tasks: config.drainTasks, concurrency: config.concurrency };
    out.pgbouncer = await pgbouncerDrains({ ...drains, batchSize: config.batchSize, drain, log });
    sections.push(pgbouncerSection(out.pgbouncer));
  }
  if (only.includes("skiplock") && !skip.has("wakes")) {
    const { wakesLine, wakesText } = await import("./lines/wakes.js");
    const baseline = flags["wakes-baseline"];
    out.wakes = await wakesLine({ ...(baseline ? { baseline } : {}), rounds: quick ? 1 : 3, log });
    sections.push(wakesText(out.wakes));
  }
  const codeAtEnd = codeIdentity();
  if (codeAtEnd.distDigest !== code.distDigest) {
    out.codeAtEnd = codeAtEnd;
    sections.push(
      `WARNING: dist/ changed during the run (${code.gitHead} ${code.distDigest} -> ${codeAtEnd.gitHead} ${codeAtEnd.distDigest}): ` +
        "part of it measured other code. Run again with nothing rebuilding the checkout.",
    );
  }
  out.finishedAt = new Date().toISOString();
  out.durationSeconds = (nowMs() - t0) / 1000;
  out.loadAverageAtEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  if (profileDir) out.cpuProfiles = readdirSync(profileDir).filter((f) => f.endsWith(".cpuprofile"));

  mkdirSync(dirname(resolve(outFile)), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(out, null, 2)}\n`);

  const header =
    `skiplock benchmark — ${m.nproc} cores, ${m.memoryGiB} GiB, Node ${m.node}, Postgres ${m.postgres}, Redis ${m.redis}\n` +
    `Postgres settings: ${Object.entries(m.postgresSettings)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}\n` +
    `${systems.map((s) => `${s.label} ${s.version}`).join(", ")}${
      only.includes("skiplock")
        ? ` (skiplock at ${code.gitHead}${code.uncommitted ? ` + ${code.uncommitted} uncommitted file(s)` : ""})`
        : ""
    }; ` +
    `${skip.has("compare") ? "" : `${config.rounds} round(s); `}${quick ? "quick; " : ""}` +
    `${out.durationSeconds.toFixed(0)} s; load average ${m.loadAverageAtStart[0]} at start, ${out.loadAverageAtEnd[0]} at end\n` +
    "shared machine: compare ratios within this run, not absolute numbers across runs";
  process.stdout.write(`\n${header}\n\n${sections.join("\n\n")}\n\nwrote ${outFile}\n`);
}

main()
  .catch((err) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await closeAdmin();
    await lockClient?.end().catch(() => {});
  });

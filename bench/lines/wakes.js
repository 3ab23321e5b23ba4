// @ts-check
// Wake-ups: claim statements per enqueued task with 1 and with 20 idle worker processes, and the idle latency (one
// enqueue -> the handler starts) in the same setting, for the code in dist/ and, with a baseline build (another
// checkout's built tree, e.g. main's), for that code too, in alternating rounds. Measurements only.
//
//   node bench/lines/wakes.js [--baseline DIR] [--rounds N] [--tasks N] [--workers 1,20]   (or `npm run bench` with a hook: run.js)
//
// Claims are counted in each worker process by wrapping pg's Client#query and matching the claim statement's text,
// so any build can be measured, including one from before the worker reported its claims.
import { fork } from "node:child_process";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const HERE = fileURLToPath(new URL(".", import.meta.url));
const OWN_DIST = resolve(HERE, "../../dist");

/** Milliseconds on the monotonic clock every process on the machine shares. */
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** @param {string} dist @returns {Promise<any>} the package's entry point in that build */
const load = (dist) => import(pathToFileURL(resolve(dist, "src/index.js")).href);

// ---------------------------------------------------------------------------------------------------------------
// The worker child: `wakes.js worker DIST SCHEMA`.

/** @param {string} dist @param {string} schema */
async function workerChild(dist, schema) {
  // The claim statement: a MATERIALIZED pick under SKIP LOCKED whose UPDATE sets PROGRESS.
  const pg = createRequire(resolve(dist, "src/index.js"))("pg");
  let claims = 0;
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (/** @type {any} */ q, /** @type {any[]} */ ...rest) {
    const text = typeof q === "string" ? q : q?.text;
    if (typeof text === "string" && text.includes("AS MATERIALIZED") && text.includes("SET status = 'PROGRESS'"))
      claims++;
    return query.call(this, q, ...rest);
  };
  const { Worker, silentLogger } = await load(dist);
  const send = (/** @type {object} */ m) => process.send?.(m);
  const worker = new Worker({
    databaseUrl: DATABASE_URL,
    redisUrl: REDIS_URL,
    schema,
    logger: silentLogger,
    concurrency: 1,
    // Far beyond the line's length: every claim counted is one a wake-up caused.
    pollInterval: 600,
    tasks: { ping: (/** @type {number} */ i) => void send({ started: i, at: nowMs() }) },
  });
  await worker.start();
  process.on("message", (/** @type {any} */ m) => {
    if (m === "claims") send({ claims });
    if (m === "stop") void worker.stop().then(() => process.exit(0));
  });
  send({ ready: true });
}

// ---------------------------------------------------------------------------------------------------------------
// The line.

/**
 * @param {import("node:child_process").ChildProcess} child
 * @param {(m: any) => boolean} match
 * @returns {Promise<any>}
 */
function nextMessage(child, match, timeoutMs = 30_000) {
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error("a wakes worker did not answer")), timeoutMs);
    const on = (/** @type {any} */ m) => {
      if (!match(m)) return;
      clearTimeout(timer);
      child.off("message", on);
      res(m);
    };
    child.on("message", on);
  });
}

/**
 * One measurement: `workers` idle processes of `dist`, `tasks` tasks enqueued one at a time, each once the previous
 * one started and a gap passed.
 * @param {string} dist
 * @param {number} workers
 * @param {number} tasks
 */
async function measure(dist, workers, tasks) {
  const { migrate, SkiplockClient, silentLogger } = await load(dist);
  const schema = `bench_wakes_${Math.random().toString(16).slice(2, 10)}`;
  await migrate({ databaseUrl: DATABASE_URL, schema });
  const client = new SkiplockClient({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, schema, logger: silentLogger });
  /** @type {import("node:child_process").ChildProcess[]} */
  const children = [];
  try {
    // Five at a time: twenty processes starting at once on a small, busy machine take longer than a start may.
    while (children.length < workers) {
      const batch = Array.from({ length: Math.min(5, workers - children.length) }, () =>
        fork(fileURLToPath(import.meta.url), ["worker", dist, schema], { stdio: "ignore" }),
      );
      children.push(...batch);
      await Promise.all(batch.map((c) => nextMessage(c, (m) => m.ready, 120_000)));
    }
    // Each worker's first claim, at its start, is not counted.
    await sleep(500);
    const count = async () => {
      const replies = await Promise.all(
        children.map((c) => {
          const reply = nextMessage(c, (m) => m.claims !== undefined);
          c.send("claims");
          return reply;
        }),
      );
      return replies.reduce((n, m) => n + m.claims, 0);
    };
    const before = await count();
    /** @type {number[]} */
    const latencies = [];
    const starts = new Map();
    for (const c of children)
      c.on("message", (/** @type {any} */ m) => m.started !== undefined && starts.set(m.started, m.at));
    for (let i = 0; i < tasks; i++) {
      await sleep(50);
      const t0 = nowMs();
      await client.createTask("ping", [i]);
      while (!starts.has(i)) await sleep(0.2);
      latencies.push(starts.get(i) - t0);
    }
    // Claims woken by the last task and still in flight.
    await sleep(300);
    const claims = (await count()) - before;
    latencies.sort((a, b) => a - b);
    return {
      workers,
      tasks,
      claimsPerTask: claims / tasks,
      latencyP50Ms: latencies[Math.floor(latencies.length / 2)] ?? NaN,
      latencyP90Ms: latencies[Math.floor(latencies.length * 0.9)] ?? NaN,
    };
  } finally {
    for (const c of children) c.send("stop");
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.on("exit", r)))));
    await client.close();
    const pg = createRequire(resolve(dist, "src/index.js"))("pg");
    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  }
}

/**
 * Alternating rounds over the builds; per build and worker count, the median over rounds.
 * @param {{ baseline?: string, rounds?: number, tasks?: number, workerCounts?: number[], log?: (s: string) => void }} o
 */
export async function wakesLine(o = {}) {
  const builds = [{ label: "this build", dist: OWN_DIST }];
  if (o.baseline) builds.push({ label: "baseline", dist: resolve(o.baseline, "dist") });
  const rounds = o.rounds ?? 2;
  const tasks = o.tasks ?? 30;
  const counts = o.workerCounts ?? [1, 20];
  /** @type {Record<string, Record<number, any[]>>} */
  const raw = {};
  for (let r = 0; r < rounds; r++) {
    for (const b of r % 2 === 0 ? builds : [...builds].reverse()) {
      for (const n of counts) {
        const m = await measure(b.dist, n, tasks);
        o.log?.(
          `wakes: round ${r + 1} ${b.label}, ${n} worker(s): ${m.claimsPerTask.toFixed(2)} claims/task, p50 ${m.latencyP50Ms.toFixed(2)} ms`,
        );
        ((raw[b.label] ??= {})[n] ??= []).push(m);
      }
    }
  }
  const med = (/** @type {number[]} */ xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const mid = (s.length - 1) / 2;
    return ((s[Math.floor(mid)] ?? NaN) + (s[Math.ceil(mid)] ?? NaN)) / 2;
  };
  const summary = builds.map((b) => ({
    label: b.label,
    dist: b.dist,
    byWorkers: counts.map((n) => {
      const ms = raw[b.label]?.[n] ?? [];
      return {
        workers: n,
        claimsPerTask: med(ms.map((m) => m.claimsPerTask)),
        latencyP50Ms: med(ms.map((m) => m.latencyP50Ms)),
        latencyP90Ms: med(ms.map((m) => m.latencyP90Ms)),
      };
    }),
  }));
  return { rounds, tasks, summary, raw };
}

/** @param {Awaited<ReturnType<typeof wakesLine>>} w */
export function wakesText(w) {
  const lines = [
    `wake-ups: claim statements per task and idle latency, ${w.tasks} tasks enqueued one at a time (median of ${w.rounds} rounds)`,
  ];
  for (const b of w.summary) {
    for (const x of b.byWorkers) {
      lines.push(
        `  ${b.label.padEnd(10)} ${String(x.workers).padStart(2)} idle worker(s): ${x.claimsPerTask.toFixed(2)} claims/task, ` +
          `enqueue->start p50 ${x.latencyP50Ms.toFixed(2)} ms, p90 ${x.latencyP90Ms.toFixed(2)} ms`,
      );
    }
  }
  return lines.join("\n");
}

if (process.argv[2] === "worker") {
  await workerChild(/** @type {string} */ (process.argv[3]), /** @type {string} */ (process.argv[4]));
} else if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      baseline: { type: "string" },
      rounds: { type: "string" },
      tasks: { type: "string" },
      workers: { type: "string" },
    },
  });
  const w = await wakesLine({
    ...(values.baseline ? { baseline: values.baseline } : {}),
    ...(values.rounds ? { rounds: Number(values.rounds) } : {}),
    ...(values.tasks ? { tasks: Number(values.tasks) } : {}),
    ...(values.workers ? { workerCounts: values.workers.split(",").map(Number) } : {}),
    log: (s) => process.stderr.write(`${s}\n`),
  });
  process.stdout.write(`${wakesText(w)}\n`);
}

// @ts-check
// `npm run chaos`: skiplock under chaos, on a private Postgres and a private Redis this script starts itself.
// Four supervised `skiplock run-worker` processes drain 10,000 mixed tasks while the script kill -9s workers,
// restarts Postgres (fast and immediate) and stops it for longer than --stale-after, flushes, kills the clients
// of and stops Redis, and sends SIGTERM to a worker running long tasks. Then it checks that nothing was lost,
// nothing is stuck, no task FAILED without running, and that every task run twice was running on a process the
// script killed. Prints a summary, writes it to bench/chaos/latest.json, and exits 1 when an invariant fails.
// See bench/chaos/README.md.
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  createWriteStream,
} from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { SkiplockClient } from "../../dist/src/index.js";
import { analyze } from "./check.js";
import { PrivatePostgres, PrivateRedis, sleep } from "./servers.js";
import { WorkerPool } from "./workers.js";
import { buildSpecs, enqueueBatch, random } from "./workload.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const ROOT = join(HERE, "..", "..");
const CLI = join(ROOT, "dist", "bin", "skiplock.js");
const TASKS = join(HERE, "tasks.js");
const LOGS = join(HERE, "logs");
const SCHEMA = "chaos";

const { values: flags } = parseArgs({
  options: {
    tasks: { type: "string", default: "10000" },
    seed: { type: "string", default: "12" },
    out: { type: "string", default: join(HERE, "latest.json") },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (flags.help) {
  process.stdout.write(`usage: npm run chaos -- [--tasks N] [--seed S] [--out FILE]
  --tasks N    tasks to enqueue (default 10000)
  --seed S     seed of the task mix and of the chaos's choices (default 12)
  --out FILE   where to write the summary (default bench/chaos/latest.json)
Worker logs, the handlers' trace files, the event log and the full report go to bench/chaos/logs/.
`);
  process.exit(0);
}
const TOTAL = Number(flags.tasks);
const SEED = Number(flags.seed);
if (!Number.isSafeInteger(TOTAL) || TOTAL < 100) throw new Error("--tasks: expected an integer >= 100");
if (!Number.isSafeInteger(SEED)) throw new Error("--seed: expected an integer");

/** The workers' flags, as the issue gives them; the checks read staleAfter and shutdownTimeout from here. */
const WORKER = {
  count: 4,
  concurrency: 8,
  retry: 3,
  heartbeatInterval: 0.5,
  staleAfter: 3,
  pollInterval: 0.5,
  shutdownTimeout: 15,
};

/**
 * The schedule, in seconds after the first enqueue. Enqueues are spread so every phase meets work in flight (the
 * mix keeps the 32 slots about 80% busy), and each server phase comes a second after a batch landed; the long
 * tasks become due just before the SIGTERM phase.
 */
const PLAN = {
  batches: 20,
  batchEvery: 4,
  stormFrom: 6,
  stormTo: 36,
  pgFast: 41,
  flushAll: 49,
  killPubsub: 50.5,
  killNormal: 52.5,
  pgImmediate: 57,
  redisStop: 65,
  redisDownFor: 5,
  pgStop: 77,
  pgDownFor: WORKER.staleAfter * 2,
  longDue: 90,
  longCount: 16,
  sigterm: 91,
  /** Bounds: waiting for the queue to drain at the end, and the whole run. */
  drainTimeout: 300,
  hardTimeout: 20 * 60,
};

// ---------------------------------------------------------------------------------------------------------------
// State, events, cleanup

/** @type {import("./workers.js").ChaosEvent[]} */
const events = [];
let t0 = Date.now();
const rel = (/** @type {number} */ at = Date.now()) => ((at - t0) / 1000).toFixed(1).padStart(6);
/** @param {string} message */
const say = (message) => process.stdout.write(`[${rel()} s] ${message}\n`);
/** @param {string} kind @param {Record<string, unknown>} [detail] */
const event = (kind, detail) => events.push({ at: Date.now(), kind, ...(detail ? { detail } : {}) });

rmSync(LOGS, { recursive: true, force: true });
mkdirSync(join(LOGS, "workers"), { recursive: true });
mkdirSync(join(LOGS, "trace"), { recursive: true });
const tmp = mkdtempSync(join(os.tmpdir(), "skiplock-chaos-"));
chmodSync(tmp, 0o711); // the postgres user (when this runs as root) must reach its data directory inside
const postgres = new PrivatePostgres(join(tmp, "pg"), join(LOGS, "postgres.log"));
const redis = new PrivateRedis(join(LOGS, "redis.log"));
/** @type {WorkerPool | null} */
let workers = null;
/** @type {SkiplockClient | null} */
let client = null;
/** @type {pg.Pool | null} */
let admin = null;
let cleaned = false;

async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  workers?.killNow();
  await client?.close().catch(() => {});
  await admin?.end().catch(() => {});
  await postgres.destroy();
  await redis.destroy();
  rmSync(tmp, { recursive: true, force: true });
}
process.on("exit", () => {
  // Last resort when something skipped the orderly cleanup: nothing the run started outlives it.
  workers?.killNow();
  postgres.killNow();
  redis.killNow();
  rmSync(tmp, { recursive: true, force: true });
});
for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
  process.on(signal, () => {
    say(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}
const hardStop = setTimeout(() => {
  say(`the run took longer than ${PLAN.hardTimeout} s: giving up`);
  void cleanup().finally(() => process.exit(2));
}, PLAN.hardTimeout * 1000);
hardStop.unref();

// ---------------------------------------------------------------------------------------------------------------
// Phases

/** Waits until `t` seconds after t0. @param {number} t */
const until = (t) => sleep(Math.max(0, t0 + t * 1000 - Date.now()));
const rnd = random(SEED ^ 0x5eed);

/**
 * kill -9 of a random worker every 1–2 s. Only workers running handlers are picked (a worker takes seconds to
 * start on a busy machine: killing it before it claims anything would test nothing); when none is, the next
 * check comes 200 ms later.
 */
async function killStorm() {
  let kills = 0;
  for (let i = 0; i < 500 && Date.now() < t0 + PLAN.stormTo * 1000; i++) {
    const busy = [...runningByPid()].filter(([, n]) => n > 0).map(([pid]) => pid);
    const pid = busy[Math.floor(rnd() * busy.length)];
    const victim = workers?.live().find((w) => w.pid === pid);
    if (!victim) {
      await sleep(200);
      continue;
    }
    workers?.sigkill(victim);
    kills++;
    await sleep(1000 + rnd() * 1000);
  }
  say(`kill -9 storm over: ${kills} workers killed`);
}

/** @param {"fast" | "immediate"} mode @param {number} downMs */
async function postgresDown(mode, downMs) {
  say(`Postgres: stop (${mode}) for ${downMs / 1000} s`);
  events.push({ at: Date.now(), kind: "pg-stop", detail: { mode, downMs } });
  await postgres.stop(mode);
  event("pg-stopped");
  await sleep(downMs);
  await postgres.start();
  event("pg-start");
  say("Postgres: up again");
}

/** @param {"pubsub" | "normal"} type */
async function redisClientKill(type) {
  const killed = await redis.cli("CLIENT", "KILL", "TYPE", type);
  events.push({ at: Date.now(), kind: "redis-client-kill", detail: { type, killed } });
  say(`Redis: CLIENT KILL TYPE ${type} (${killed} clients)`);
}

/**
 * How many handlers (of task `name`, or of any task) each live worker is running: starts without ends in its trace.
 * @param {string} [name]
 */
function runningByPid(name) {
  /** @type {Map<number, number>} */
  const counts = new Map();
  for (const w of workers?.live() ?? []) {
    const file = join(LOGS, "trace", `${w.pid}.jsonl`);
    if (!existsSync(file)) continue;
    /** @type {Map<string, boolean>} */
    const open = new Map();
    for (const line of readFileSync(file, "utf8").split("\n")) {
      if (!line) continue;
      const e = JSON.parse(line);
      if (e.e === "start" && (name === undefined || e.name === name)) open.set(e.run, true);
      if (e.e === "end") open.delete(e.run);
    }
    counts.set(w.pid, open.size);
  }
  return counts;
}

async function sigtermPhase() {
  // Wait (bounded) until a worker runs long tasks, preferring one that runs two or more.
  /** @type {{ pid: number, n: number } | null} */
  let pick = null;
  for (let i = 0; i < 60; i++) {
    for (const [pid, n] of runningByPid("long")) if (n > 0 && (!pick || n > pick.n)) pick = { pid, n };
    if (pick && (pick.n >= 2 || i >= 10)) break;
    pick = null;
    await sleep(500);
  }
  const proc = pick ? workers?.live().find((w) => w.pid === pick?.pid) : undefined;
  if (!pick || !proc || !workers) {
    event("sigterm-skipped", { reason: "no worker ran a long task within 30 s" });
    say("SIGTERM phase: no worker ran a long task within 30 s; skipped");
    return;
  }
  say(`SIGTERM to pid ${proc.pid} (w${proc.slot}), running ${pick.n} long tasks`);
  const exit = await Promise.race([
    workers.sigterm(proc),
    sleep((WORKER.shutdownTimeout + 15) * 1000).then(() => null),
  ]);
  if (!exit) {
    say(`pid ${proc.pid} still up ${WORKER.shutdownTimeout + 15} s after SIGTERM: kill -9`);
    proc.child.kill("SIGKILL");
    await proc.exited;
    return;
  }
  say(
    `pid ${proc.pid} exited (code ${exit.code}) ${((exit.at - (events.findLast((e) => e.kind === "sigterm")?.at ?? exit.at)) / 1000).toFixed(1)} s after SIGTERM`,
  );
}

/** @param {import("./workload.js").Spec[]} specs */
async function enqueueAll(specs) {
  const size = Math.ceil(specs.length / PLAN.batches);
  for (let i = 0; i < PLAN.batches; i++) {
    await until(i * PLAN.batchEvery);
    // Not while Postgres is down (bounded): the batch would only wait in its retries.
    for (let w = 0; w < 200 && !postgres.running; w++) await sleep(100);
    const batch = specs.slice(i * size, (i + 1) * size);
    if (batch.length === 0) break;
    if (!client || !admin) throw new Error("no client");
    await enqueueBatch({
      client,
      admin,
      schema: SCHEMA,
      batch,
      event: (kind, detail) => {
        event(kind, detail);
        say(`enqueue: batch ${i} failed (${String(detail.error).slice(0, 80)}); enqueuing what has no row`);
      },
    });
    event("enqueued", { batch: i, size: batch.length });
  }
  say(`enqueued all ${specs.length} tasks`);
}

async function countLive() {
  if (!admin) return -1;
  const { rows } = await admin.query(
    `SELECT count(*)::int AS n FROM "${SCHEMA}".tasks WHERE status IN ('PENDING', 'PROGRESS')`,
  );
  return /** @type {number} */ (rows[0].n);
}

async function drain() {
  const deadline = Date.now() + PLAN.drainTimeout * 1000;
  let lastSaid = 0;
  for (;;) {
    const n = await countLive().catch(() => -1);
    if (n === 0) return true;
    if (Date.now() > deadline) {
      say(`gave up waiting: ${n} tasks still PENDING or PROGRESS after ${PLAN.drainTimeout} s`);
      return false;
    }
    if (Date.now() - lastSaid > 10_000) {
      say(`draining: ${n} tasks PENDING or PROGRESS`);
      lastSaid = Date.now();
    }
    await sleep(1000);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The run

async function main() {
  const startedAt = new Date();
  await postgres.init();
  await redis.init();
  say(`private Postgres on 127.0.0.1:${postgres.port}, private Redis on 127.0.0.1:${redis.port}`);
  const env = {
    DATABASE_URL: postgres.url,
    REDIS_URL: redis.url,
    SKIPLOCK_SCHEMA: SCHEMA,
    CHAOS_TRACE_DIR: join(LOGS, "trace"),
  };

  const migrated = spawnSync(process.execPath, [CLI, "migrate"], {
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
  if (migrated.status !== 0) throw new Error(`skiplock migrate failed: ${migrated.stderr}`);
  admin = new pg.Pool({ connectionString: postgres.url, max: 2, connectionTimeoutMillis: 2000 });
  admin.on("error", () => {});
  await admin.query(`CREATE TABLE "${SCHEMA}".ledger (
    run_id uuid PRIMARY KEY, task_id bigint NOT NULL, attempt int NOT NULL, pid int NOT NULL,
    at timestamptz NOT NULL, recorded_at timestamptz NOT NULL DEFAULT clock_timestamp())`);
  const [pgVersion, redisVersion] = [
    (await admin.query("SHOW server_version")).rows[0].server_version,
    (await redis.cli("INFO", "server")).match(/redis_version:(\S+)/)?.[1] ?? "?",
  ];

  const clientLog = createWriteStream(join(LOGS, "client.log"));
  const write = (/** @type {string} */ level) => (/** @type {string} */ message, /** @type {unknown} */ fields) =>
    clientLog.write(`${new Date().toISOString()} ${level} ${message}${fields ? ` ${JSON.stringify(fields)}` : ""}\n`);
  client = new SkiplockClient({
    databaseUrl: postgres.url,
    redisUrl: redis.url,
    schema: SCHEMA,
    logger: { debug() {}, info: write("info"), warn: write("warn"), error: write("error") },
  });

  workers = new WorkerPool({
    count: WORKER.count,
    argv: [
      CLI,
      "run-worker",
      "--tasks",
      TASKS,
      "--concurrency",
      String(WORKER.concurrency),
      "--retry",
      String(WORKER.retry),
      "--heartbeat-interval",
      String(WORKER.heartbeatInterval),
      "--stale-after",
      String(WORKER.staleAfter),
      "--poll-interval",
      String(WORKER.pollInterval),
      "--shutdown-timeout",
      String(WORKER.shutdownTimeout),
      "--queue",
      "default",
      "--queue",
      "bulk",
    ],
    env,
    cwd: ROOT,
    logDir: join(LOGS, "workers"),
    events,
    restartDelayMs: 300,
  });
  workers.start();
  await sleep(1500);

  const specs = buildSpecs({ total: TOTAL, longCount: PLAN.longCount, longDueIn: PLAN.longDue, seed: SEED });
  t0 = Date.now();
  say(
    `${specs.length} tasks in ${PLAN.batches} batches, one every ${PLAN.batchEvery} s; ${WORKER.count} workers × ${WORKER.concurrency}`,
  );
  const enqueuing = enqueueAll(specs);
  enqueuing.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile

  await until(PLAN.stormFrom);
  say("kill -9 storm: a random worker every 1–2 s");
  await killStorm();
  await until(PLAN.pgFast);
  await postgresDown("fast", 1000);
  await until(PLAN.flushAll);
  events.push({ at: Date.now(), kind: "redis-flushall" });
  say(`Redis: FLUSHALL (${await redis.cli("FLUSHALL")})`);
  await until(PLAN.killPubsub);
  await redisClientKill("pubsub");
  await until(PLAN.killNormal);
  await redisClientKill("normal");
  await until(PLAN.pgImmediate);
  await postgresDown("immediate", 1000);
  await until(PLAN.redisStop);
  say(`Redis: stop for ${PLAN.redisDownFor} s`);
  events.push({ at: Date.now(), kind: "redis-stop" });
  await redis.stop();
  await sleep(PLAN.redisDownFor * 1000);
  await redis.start();
  events.push({ at: Date.now(), kind: "redis-start" });
  say("Redis: up again");
  await until(PLAN.pgStop);
  await postgresDown("fast", PLAN.pgDownFor * 1000);
  await enqueuing;
  await until(PLAN.sigterm);
  await sigtermPhase();

  say("chaos over; waiting for every task to finish");
  const drainedAt = (await drain()) ? Date.now() : null;
  await workers.stopAll(WORKER.shutdownTimeout * 1000 + 5000);
  say("workers stopped; checking");

  // --- the evidence
  const rows = (
    await admin.query(`SELECT id::text, (args->>0)::int AS k, name, status, error, attempt, retry_count, max_retries,
                              (result->>'k')::int AS result_k, worker_id,
                              (extract(epoch FROM started_at) * 1000)::float8 AS started_at,
                              (extract(epoch FROM finished_at) * 1000)::float8 AS finished_at
                         FROM "${SCHEMA}".tasks`)
  ).rows;
  const ledger = (
    await admin.query(`SELECT run_id::text, task_id::text, attempt, pid, (extract(epoch FROM at) * 1000)::float8 AS at
                         FROM "${SCHEMA}".ledger`)
  ).rows;
  /** @type {Record<string, any>[]} */
  const trace = [];
  for (const f of readdirSync(join(LOGS, "trace"))) {
    for (const line of readFileSync(join(LOGS, "trace", f), "utf8").split("\n")) {
      if (!line) continue;
      try {
        trace.push(JSON.parse(line));
      } catch {
        // the last line of a process killed while it wrote: cannot happen with one write(2) per line, but harmless
      }
    }
  }
  const workerLogs = readdirSync(join(LOGS, "workers")).map((f) => ({
    pid: Number(/-(\d+)\.log$/.exec(f)?.[1]),
    text: readFileSync(join(LOGS, "workers", f), "utf8"),
  }));
  const result = analyze({
    specs,
    rows,
    ledger,
    trace,
    events,
    t0,
    shutdownTimeout: WORKER.shutdownTimeout,
    workerLogs,
  });

  const chaosDone = {
    kill9: events.filter((e) => e.kind === "sigkill").length,
    sigterm: events.filter((e) => e.kind === "sigterm").length,
    postgresStops: events
      .filter((e) => e.kind === "pg-stop")
      .map((e) => `${e.detail?.mode} ${Number(e.detail?.downMs) / 1000} s`),
    redis: events
      .filter((e) => e.kind.startsWith("redis-"))
      .map((e) => (e.kind === "redis-client-kill" ? `client kill ${e.detail?.type}` : e.kind.slice(6))),
    workerStarts: events.filter((e) => e.kind === "worker-start").length,
  };
  const summary = {
    verdict: result.violations.length === 0 ? "PASS" : "FAIL",
    startedAt: startedAt.toISOString(),
    seconds: {
      total: Math.round((Date.now() - startedAt.getTime()) / 1000),
      drainedAfterFirstEnqueue: drainedAt ? Math.round((drainedAt - t0) / 1000) : null,
    },
    setup: {
      node: process.version,
      postgres: pgVersion,
      redis: redisVersion,
      cpus: os.cpus().length,
      seed: SEED,
      workers: WORKER,
      plan: PLAN,
    },
    chaos: chaosDone,
    figures: result.figures,
    violations: result.violations,
    explainedReruns: result.explainedReruns,
    chargedWithoutRun: result.chargedWithoutRun,
    timeline: events
      .filter(
        (e) =>
          !["worker-start", "enqueued", "pg-stopped"].includes(e.kind) &&
          !(e.kind === "worker-exit" && e.detail?.by === "killed"),
      )
      .map((e) => ({
        t: Number(((e.at - t0) / 1000).toFixed(2)),
        kind: e.kind,
        ...(e.pid ? { pid: e.pid } : {}),
        ...(e.detail ? { detail: e.detail } : {}),
      })),
  };
  writeFileSync(join(LOGS, "events.json"), JSON.stringify(events, null, 1));
  writeFileSync(join(LOGS, "tasks.json"), JSON.stringify(rows));
  writeFileSync(join(LOGS, "ledger.json"), JSON.stringify(ledger));
  writeFileSync(join(LOGS, "report.json"), JSON.stringify({ ...summary, violations: result.violations }, null, 1));
  writeFileSync(/** @type {string} */ (flags.out), `${JSON.stringify(summary, null, 2)}\n`);
  printSummary(summary);
  return result.violations.length === 0;
}

/** @param {any} s */
function printSummary(s) {
  const f = s.figures;
  const ok = (/** @type {number} */ n) => (n === 0 ? "ok" : "FAIL");
  const line = (/** @type {string} */ label, /** @type {unknown} */ value, note = "") =>
    process.stdout.write(`  ${label.padEnd(46)} ${String(value).padStart(7)}  ${note}\n`);
  process.stdout.write(`\nskiplock chaos run: ${s.verdict} (${s.seconds.total} s, seed ${s.setup.seed})\n`);
  process.stdout.write(
    `  chaos: ${s.chaos.kill9} kill -9, ${s.chaos.sigterm} SIGTERM, Postgres ${s.chaos.postgresStops.join(" / ")}, Redis ${s.chaos.redis.join(", ")}\n`,
  );
  line("tasks (enqueued)", `${f.tasks} (${f.enqueued})`);
  for (const [status, n] of Object.entries(f.byStatus)) line(`  ${status}`, n);
  line("lost (no row)", f.lost, ok(f.lost));
  line("stuck (PENDING/PROGRESS at the end)", f.stuck, ok(f.stuck));
  line("FAILED that never ran", f.failedNeverRan, ok(f.failedNeverRan));
  for (const [why, n] of Object.entries(f.failed)) line(`  FAILED: ${why}`, n);
  line("FAILED with no ledger row (killed before it)", f.failedWithoutLedgerRow);
  line("runs (trace) / in ledger / killed mid-run", `${f.runs.total} / ${f.runs.inLedger} / ${f.runs.killedMidRun}`);
  const m = f.runningAtChaos;
  line(
    "handlers running at a chaos event: min / median",
    `${m.min} / ${m.median}`,
    `of ${WORKER.count * WORKER.concurrency} slots, ${m.events} events`,
  );
  if (f.workersRefusedToStartWhilePostgresDown) {
    line(
      "workers that could not start while Postgres was down",
      f.workersRefusedToStartWhilePostgresDown,
      "expected (exit 1, restarted)",
    );
  }
  const st = f.workerStartup;
  line(
    "worker processes started / spawned",
    `${st.started} / ${st.spawned}`,
    `spawn to "worker started": median ${st.medianSeconds} s, max ${st.maxSeconds} s`,
  );
  line("tasks charged a retry for a run they never had", f.chargedWithoutRun, f.chargedWithoutRun ? "WARN" : "ok");
  line("tasks run more than once", f.runMoreThanOnce);
  for (const [why, n] of Object.entries(f.reruns)) {
    const note =
      why === "earlier run on a SIGKILLed worker" ? "allowed" : why.startsWith("claim undone") ? "explained" : "FAIL";
    line(`  ${why}`, n, note);
  }
  for (const t of f.sigterms) {
    line(
      `SIGTERM pid ${t.pid}: drained / running`,
      `${t.drained} / ${t.runningAtSigterm}`,
      `exit ${t.exitCode} after ${(t.exitAfterMs / 1000).toFixed(1)} s`,
    );
  }
  const w = f.workerLogs;
  line(
    "sweeps: requeued / unstarted back / failed",
    `${w.requeued} / ${w.handedBack} / ${w.failed}`,
    `in ${w.sweeps} sweeps`,
  );
  for (const v of s.violations) {
    process.stdout.write(`\nFAIL ${v.check}: ${v.count}\n`);
    for (const item of v.items.slice(0, 10)) process.stdout.write(`  ${JSON.stringify(item)}\n`);
  }
  for (const e of s.explainedReruns.slice(0, 10)) process.stdout.write(`\nexplained re-run: ${JSON.stringify(e)}\n`);
  for (const e of s.chargedWithoutRun.slice(0, 10))
    process.stdout.write(`\nWARN charged without a run: ${JSON.stringify(e)}\n`);
  process.stdout.write("\nlogs, trace files and the full report: bench/chaos/logs/\n");
}

let passed = false;
try {
  passed = await main();
} catch (err) {
  say(`the run failed: ${err instanceof Error ? err.stack : String(err)}`);
} finally {
  await cleanup();
}
process.exit(passed ? 0 : 1);

// @ts-check
// `npm run soak`: a million-row day. Enqueues and completes --total tasks (default 1,000,000) at a sustained --rate
// on a private Postgres (autovacuum on, as in production) and a private Redis, while retention purges finished
// tasks as it goes, waiters wait on a sample of the tasks and a dashboard reads its stats and task lists. Records,
// per tenth of the run: the claim latency (enqueue to handler start), the drain rate, the tasks tables' size, dead
// tuples and autovacuum runs, and the workers' RSS. Prints a table and writes bench/results/soak.json (a run with
// another --total writes bench/results/soak-<total>.tmp unless --out says otherwise). See bench/README.md, "Soak".
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { SkiplockClient, createDashboard, migrate } from "../../dist/src/index.js";
import { PrivatePostgres, PrivateRedis, sleep } from "../chaos/servers.js";
import { percentile, procMem } from "../lib/util.js";
import { readAutovacuumLog } from "./autovacuum-log.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const ROOT = join(HERE, "..", "..");
const CLI = join(ROOT, "dist", "bin", "skiplock.js");
const TASKS = join(HERE, "tasks.js");
const SCHEMA = "soak";

const { values: flags } = parseArgs({
  options: {
    total: { type: "string", default: "1000000" },
    rate: { type: "string", default: "2000" },
    workers: { type: "string", default: "2" },
    concurrency: { type: "string", default: "16" },
    retention: { type: "string", default: "30" },
    "purge-every": { type: "string", default: "5" },
    "wait-every": { type: "string", default: "500" },
    "dashboard-every": { type: "string", default: "3" },
    warmup: { type: "string", default: "5" },
    "autovacuum-naptime": { type: "string" },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (flags.help) {
  process.stdout.write(`usage: npm run soak -- [--total N] [--rate R] [--workers N] [--concurrency N]
                        [--retention S] [--purge-every S] [--wait-every N] [--dashboard-every S] [--out FILE]
  --total N            tasks to enqueue and complete (default 1000000)
  --rate R             tasks enqueued per second, paced (default 2000)
  --workers N          run-worker processes (default 2), each --concurrency N (default 16)
  --retention S        finished tasks older than S seconds are purged (default 30) ...
  --purge-every S      ... every S seconds (default 5)
  --wait-every N       one task in N gets a waitForCompletion caller (default 500)
  --dashboard-every S  the dashboard reads api/stats and three api/tasks lists every S seconds (default 3)
  --warmup S           before the measured run, S seconds at the same rate, not measured (default 5)
  --autovacuum-naptime S   the server's autovacuum_naptime (default: Postgres's, 60 s)
  --out FILE           default bench/results/soak.json for the full million, else bench/results/soak-<total>.tmp
`);
  process.exit(0);
}
const int = (/** @type {string} */ name, /** @type {string | undefined} */ v, min = 1) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name}: expected a number >= ${min}, got ${v}`);
  return n;
};
const TOTAL = int("total", flags.total, 1000);
const RATE = int("rate", flags.rate);
const WORKERS = int("workers", flags.workers);
const CONCURRENCY = int("concurrency", flags.concurrency);
const RETENTION = int("retention", flags.retention, 0);
const PURGE_EVERY = int("purge-every", flags["purge-every"]);
const WAIT_EVERY = int("wait-every", flags["wait-every"]);
const DASHBOARD_EVERY = int("dashboard-every", flags["dashboard-every"]);
const WARMUP = int("warmup", flags.warmup, 0);
const NAPTIME =
  flags["autovacuum-naptime"] === undefined ? null : int("autovacuum-naptime", flags["autovacuum-naptime"]);
const OUT = flags.out ?? join(HERE, "..", "results", TOTAL === 1_000_000 ? "soak.json" : `soak-${TOTAL}.tmp`);
const SLICES = 10;
/** No completion for this long while tasks are queued: the run has stalled; it stops and says so. */
const STALL_MS = 60_000;

const started = Date.now();
const say = (/** @type {string} */ m) =>
  process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${m}\n`);

const tmp = mkdtempSync(join(os.tmpdir(), "skiplock-soak-"));
chmodSync(tmp, 0o711); // the postgres user (when this runs as root) must reach its data directory inside
const pgLog = join(tmp, "postgres.log");
const postgres = new PrivatePostgres(join(tmp, "pg"), pgLog);
const redis = new PrivateRedis(join(tmp, "redis.log"));
/** @type {import("node:child_process").ChildProcess[]} */
const workers = [];
process.on("exit", () => {
  for (const w of workers) w.kill("SIGKILL");
  postgres.killNow();
  redis.killNow();
});
for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) process.on(signal, () => process.exit(130));

// ---------------------------------------------------------------------------------------------------------------
// What the run records

/** Milliseconds from enqueue to handler start, by task number (NaN: not started yet). */
const claimMs = new Float32Array(TOTAL).fill(NaN);
/** Handler starts by task number: 1 each, unless a task ran twice. */
const starts = new Uint8Array(TOTAL);
let startsSeen = 0;
/** @type {{ at: number, i: number, ms: number | null }[]} waiters: when each resolved, its task, ms from enqueue */
const waits = [];
/** @type {{ at: number, path: string, ms: number, status: number }[]} */
const dashboardReads = [];
/** @type {{ at: number, ms: number, deleted: number, scanned: number }[]} */
const purges = [];
/** @type {{ at: number, ms: number, n: number }[]} */
const enqueues = [];
/** @type {{ at: number, live: number, rss: number[] }[]} one a second */
const samples = [];
/** @type {{ at: number, pid: number | undefined, event: string, data: unknown }[]} what the workers reported */
const workerEvents = [];
/** @type {{ at: number, stalledForMs: number, live: number, activity: unknown[] }[]} */
const pauses = [];

/** @type {pg.Pool} */
let admin = /** @type {any} */ (null);

/** Sizes and vacuum statistics of the tasks partitions. */
async function tableStats() {
  const { rows } = await admin.query(
    `SELECT c.relname AS table, pg_total_relation_size(c.oid)::float8 AS bytes,
            s.n_live_tup::int AS live, s.n_dead_tup::int AS dead,
            s.autovacuum_count::int AS autovacuums, s.autoanalyze_count::int AS autoanalyzes,
            s.n_tup_ins::float8 AS inserted, s.n_tup_del::float8 AS deleted
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
      WHERE n.nspname = $1 AND c.relname IN ('tasks_live', 'tasks_done') ORDER BY c.relname DESC`,
    [SCHEMA],
  );
  /** @type {Record<string, { mib: number, live: number, dead: number, autovacuums: number, autoanalyzes: number }>} */
  const out = {};
  for (const r of rows) {
    out[r.table] = {
      mib: r.bytes / 2 ** 20,
      live: r.live,
      dead: r.dead,
      autovacuums: r.autovacuums,
      autoanalyzes: r.autoanalyzes,
    };
  }
  return out;
}

async function liveCount() {
  const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${SCHEMA}".tasks_live`);
  return /** @type {number} */ (rows[0].n);
}

const rssOfWorkers = () => workers.map((w) => procMem(/** @type {number} */ (w.pid))?.rss ?? NaN);

/**
 * A run-worker process; resolves once it reported worker:started.
 * @param {Record<string, string>} env
 */
async function startWorker(env) {
  const args = [CLI, "run-worker", "--tasks", TASKS, "--concurrency", String(CONCURRENCY), "--log-level", "warn"];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "inherit", "inherit", "ipc"], env });
  workers.push(child);
  let up = false;
  child.on("message", (/** @type {any} */ m) => {
    if (m.soak) {
      const batch = /** @type {number[]} */ (m.soak);
      for (let k = 0; k < batch.length; k += 2) {
        const i = /** @type {number} */ (batch[k]);
        if (i < 0) continue; // a warm-up task
        if (starts[i] === 0) claimMs[i] = /** @type {number} */ (batch[k + 1]);
        starts[i] = Math.min(255, (starts[i] ?? 0) + 1);
        startsSeen++;
      }
    } else if (m.event === "worker:started") up = true;
    else if (m.event) workerEvents.push({ at: Date.now(), pid: child.pid, event: m.event, data: m.data });
  });
  const deadline = Date.now() + 30_000;
  while (!up) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error("a worker did not start");
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The load: producer, waiters, purge, dashboard

/**
 * Enqueues TOTAL tasks paced at RATE a second: every 20 ms, one createTasks call for what is due by then.
 * @param {SkiplockClient} client
 * @param {() => boolean} stopped
 */
async function produce(client, stopped) {
  const t0 = Date.now();
  let enqueued = 0;
  while (enqueued < TOTAL && !stopped()) {
    const due = Math.min(TOTAL, Math.floor(((Date.now() - t0) / 1000) * RATE));
    const n = Math.min(due - enqueued, 5000);
    if (n <= 0) {
      await sleep(20 - ((Date.now() - t0) % 20));
      continue;
    }
    const at = Date.now();
    const from = enqueued;
    const specs = Array.from({ length: n }, (_, k) => ({ name: "soak", args: [from + k, at] }));
    const tasks = await client.createTasks(specs);
    enqueues.push({ at, ms: Date.now() - at, n });
    for (let k = 0; k < n; k++) {
      const i = from + k;
      if (i % WAIT_EVERY !== 0) continue;
      const id = /** @type {string} */ (tasks[k]?.id);
      void client.waitForCompletion(id, { timeout: 120 }).then(
        (t) => waits.push({ at: Date.now(), i, ms: t ? Date.now() - at : null }),
        () => waits.push({ at: Date.now(), i, ms: null }),
      );
    }
    enqueued += n;
  }
  return { seconds: (Date.now() - t0) / 1000, enqueued };
}

/**
 * Calls `fn` every `everyMs` until `stopped()`, one call at a time.
 * @param {number} everyMs
 * @param {() => Promise<void>} fn
 * @param {() => boolean} stopped
 */
async function every(everyMs, fn, stopped) {
  while (!stopped()) {
    const at = Date.now();
    await fn();
    await sleep(Math.max(0, at + everyMs - Date.now()));
  }
}

/**
 * WARMUP seconds of tasks at RATE, numbered -1 (not measured), drained before the run: connections opened, code
 * compiled, the workers' prefetch sized. They are purged with the rest once older than the retention.
 * @param {SkiplockClient} client
 */
async function warmUp(client) {
  const t0 = Date.now();
  const count = WARMUP * RATE;
  for (let sent = 0; sent < count;) {
    const n = Math.min(count - sent, Math.floor(((Date.now() - t0) / 1000) * RATE) - sent);
    if (n > 0) await client.createTasks(Array.from({ length: n }, () => ({ name: "soak", args: [-1, Date.now()] })));
    sent += Math.max(0, n);
    await sleep(20);
  }
  while ((await liveCount()) > 0) await sleep(100);
  say(`warmed up: ${count} tasks in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

// ---------------------------------------------------------------------------------------------------------------
// Slices

/**
 * @typedef {object} Slice
 * @property {number} index
 * @property {number} endedAt epoch ms at which the slice's last task was done
 * @property {number} seconds
 * @property {number} drainRate tasks/s over the slice
 * @property {{ count: number, p50: number, p99: number, max: number }} claimMs enqueue to handler start, tasks of
 *   this slice
 * @property {Record<string, { mib: number, live: number, dead: number, autovacuums: number, autoanalyzes: number }>} tables
 * @property {number} tasksMib both partitions
 * @property {number[]} workerRssMib at the slice's end
 * @property {number} maxBacklog most live rows seen in the slice
 * @property {{ count: number, p99Ms: number, timedOut: number }} waiters resolved within the slice
 * @property {{ count: number, p99Ms: number, failed: number }} dashboard reads within the slice
 * @property {{ runs: number, deleted: number, maxMs: number }} purge within the slice
 * @property {number} loadAverage 1-minute load at the slice's end
 */

/**
 * @param {number} index
 * @param {number} from epoch ms the slice began
 * @param {number} to epoch ms it ended
 * @returns {Promise<Slice>}
 */
async function slice(index, from, to) {
  const lo = Math.floor((index * TOTAL) / SLICES);
  const hi = Math.floor(((index + 1) * TOTAL) / SLICES);
  const lat = Array.from(claimMs.subarray(lo, hi)).filter((x) => !Number.isNaN(x));
  const within = (/** @type {{ at: number }} */ x) => x.at > from && x.at <= to;
  const w = waits.filter(within);
  const d = dashboardReads.filter(within);
  const p = purges.filter(within);
  const tables = await tableStats();
  return {
    index,
    endedAt: to,
    seconds: (to - from) / 1000,
    drainRate: (hi - lo) / ((to - from) / 1000),
    claimMs: { count: lat.length, p50: percentile(lat, 50), p99: percentile(lat, 99), max: Math.max(...lat) },
    tables,
    tasksMib: Object.values(tables).reduce((s, t) => s + t.mib, 0),
    workerRssMib: rssOfWorkers(),
    maxBacklog: Math.max(0, ...samples.filter(within).map((s) => s.live)),
    waiters: {
      count: w.length,
      p99Ms: percentile(
        w.flatMap((x) => (x.ms === null ? [] : [x.ms])),
        99,
      ),
      timedOut: w.filter((x) => x.ms === null).length,
    },
    dashboard: {
      count: d.length,
      p99Ms: percentile(
        d.map((x) => x.ms),
        99,
      ),
      failed: d.filter((x) => x.status !== 200).length,
    },
    purge: { runs: p.length, deleted: p.reduce((s, x) => s + x.deleted, 0), maxMs: Math.max(0, ...p.map((x) => x.ms)) },
    loadAverage: os.loadavg()[0] ?? NaN,
  };
}

// ---------------------------------------------------------------------------------------------------------------

async function main() {
  const loadAtStart = os.loadavg();
  say(`soak: ${TOTAL} tasks at ${RATE}/s, ${WORKERS} workers x ${CONCURRENCY}, retention ${RETENTION} s`);
  await postgres.init();
  await redis.init();
  admin = new pg.Pool({ connectionString: postgres.url, max: 3 });
  admin.on("error", () => {});
  // Every autovacuum run goes to the log, to say what each did (read at the end).
  await admin.query("ALTER SYSTEM SET log_autovacuum_min_duration = 0");
  // Lock waits and statements over a second go to the log too: what a pause in the drain waited for.
  await admin.query("ALTER SYSTEM SET log_lock_waits = on");
  await admin.query("ALTER SYSTEM SET log_min_duration_statement = 1000");
  if (NAPTIME !== null) await admin.query(`ALTER SYSTEM SET autovacuum_naptime = ${Math.round(NAPTIME)}`);
  await admin.query("SELECT pg_reload_conf()");
  const settings = Object.fromEntries(
    (
      await admin.query(
        `SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'fsync', 'synchronous_commit',
           'shared_buffers', 'autovacuum_naptime', 'autovacuum_vacuum_scale_factor', 'max_wal_size', 'server_version')`,
      )
    ).rows.map((r) => [r.name, r.setting]),
  );
  await migrate({ databaseUrl: postgres.url, schema: SCHEMA });
  const env = { ...process.env, DATABASE_URL: postgres.url, REDIS_URL: redis.url, SKIPLOCK_SCHEMA: SCHEMA };
  for (let k = 0; k < WORKERS; k++) await startWorker(/** @type {Record<string, string>} */ (env));
  const client = new SkiplockClient({ databaseUrl: postgres.url, redisUrl: redis.url, schema: SCHEMA });
  const dashboard = createDashboard({ client });
  if (WARMUP > 0) await warmUp(client);

  let done = false;
  const stopped = () => done;
  const t0 = Date.now();
  const producing = produce(client, stopped);
  const purging = every(
    PURGE_EVERY * 1000,
    async () => {
      const at = Date.now();
      const r = await client.purgeTasks({ olderThanDays: RETENTION / 86_400 });
      purges.push({ at: Date.now(), ms: Date.now() - at, deleted: r.deleted, scanned: r.scanned });
    },
    stopped,
  );
  const paths = ["api/stats", "api/tasks?limit=50", "api/tasks?status=COMPLETED&limit=50", "api/tasks?status=PENDING"];
  const reading = every(
    DASHBOARD_EVERY * 1000,
    async () => {
      for (const path of paths) {
        const at = Date.now();
        const res = await dashboard.fetch(new Request(`http://127.0.0.1/${path}`));
        await res.arrayBuffer();
        dashboardReads.push({ at: Date.now(), path, ms: Date.now() - at, status: res.status });
      }
    },
    stopped,
  );

  /** @type {Slice[]} */
  const slices = [];
  let sliceFrom = t0;
  let lastProgressAt = Date.now();
  let lastDone = 0;
  /** @type {string | null} */
  let stall = null;
  for (let tick = 0; slices.length < SLICES; tick++) {
    await sleep(250);
    const live = await liveCount();
    const enqueued = enqueues.reduce((s, e) => s + e.n, 0);
    const completed = enqueued - live;
    if (tick % 4 === 0) samples.push({ at: Date.now(), live, rss: rssOfWorkers() });
    if (completed > lastDone) {
      lastDone = completed;
      lastProgressAt = Date.now();
    } else if (live > 0) {
      const quietMs = Date.now() - lastProgressAt;
      if (quietMs > STALL_MS) {
        stall = `no task completed for ${STALL_MS / 1000} s with ${live} queued, after ${completed} completed`;
        break;
      }
      if (quietMs > 3000 && pauses.length < 20 && Date.now() - (pauses.at(-1)?.at ?? 0) > 1000) {
        // Nothing completed for 3 s with tasks queued: what every connection of the server is doing.
        const { rows: activity } = await admin.query(
          `SELECT pid, application_name, state, wait_event_type, wait_event, backend_type,
                  round(extract(epoch FROM now() - query_start)::numeric, 2)::float8 AS query_seconds,
                  left(query, 160) AS query, pg_blocking_pids(pid) AS blocked_by
             FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type <> 'walsender'`,
        );
        pauses.push({ at: Date.now(), stalledForMs: quietMs, live, activity });
        say(`no completion for ${(quietMs / 1000).toFixed(1)} s, ${live} queued`);
      }
    }
    while (slices.length < SLICES && completed >= Math.floor(((slices.length + 1) * TOTAL) / SLICES)) {
      const s = await slice(slices.length, sliceFrom, Date.now());
      slices.push(s);
      sliceFrom = s.endedAt;
      say(
        `${(slices.length * 100) / SLICES}%: ${Math.round(s.drainRate)}/s, claim p99 ${s.claimMs.p99.toFixed(1)} ms, ` +
          `tasks ${s.tasksMib.toFixed(1)} MiB, dead ${Object.values(s.tables)
            .map((t) => t.dead)
            .join(
              "/",
            )}, rss ${s.workerRssMib.map((r) => r.toFixed(0)).join("/")} MiB, load ${s.loadAverage.toFixed(2)}`,
      );
    }
  }
  done = true;
  const produced = await producing;
  await Promise.all([purging, reading]);
  await sleep(2000); // the last waiters and latency batches
  for (const w of workers) w.kill("SIGTERM");
  await Promise.all(workers.map((w) => (w.exitCode === null ? new Promise((r) => w.on("exit", r)) : null)));
  await dashboard.close();
  await client.close();

  const twice = starts.reduce((n, c) => n + (c > 1 ? 1 : 0), 0);
  const never = starts.reduce((n, c) => n + (c === 0 ? 1 : 0), 0);
  const serverLog = readFileSync(pgLog, "utf8");
  const autovacuum = readAutovacuumLog(serverLog, SCHEMA);
  const keptLog = join(os.tmpdir(), "skiplock-soak-postgres.log");
  writeFileSync(keptLog, serverLog);
  say(`the server's log: ${keptLog}`);
  const first = slices[0];
  const last = slices.at(-1);
  const record = {
    when: new Date(started).toISOString(),
    seconds: (Date.now() - started) / 1000,
    verdict: stall ? "STALL" : twice === 0 && never === 0 ? "PASS" : "FAIL",
    code: spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).stdout.trim(),
    stall,
    settings: {
      total: TOTAL,
      rate: RATE,
      workers: WORKERS,
      concurrency: CONCURRENCY,
      retentionSeconds: RETENTION,
      purgeEverySeconds: PURGE_EVERY,
      waitEvery: WAIT_EVERY,
      dashboardEverySeconds: DASHBOARD_EVERY,
      warmupSeconds: WARMUP,
      autovacuumNaptime: NAPTIME,
    },
    machine: {
      cpus: os.cpus().length,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      postgres: settings,
      loadAverageAtStart: loadAtStart,
      loadAverageAtEnd: os.loadavg(),
    },
    producer: { ...produced, achievedRate: produced.enqueued / produced.seconds },
    tasks: { started: startsSeen, ranTwice: twice, neverStarted: never },
    firstToLast: first && last ? compare(first, last) : null,
    // The first tenth holds the tables' filling: finished rows up to the retention, and dead rows up to the first
    // autovacuum. From the second tenth on, a flat run keeps these near 1 too.
    secondToLast: slices[1] && last ? compare(slices[1], last) : null,
    slices,
    purge: {
      runs: purges.length,
      deleted: purges.reduce((s, x) => s + x.deleted, 0),
      maxMs: Math.max(0, ...purges.map((x) => x.ms)),
    },
    autovacuum,
    workerEvents: summarizeEvents(t0),
    pauses: pauses.map((p) => ({ ...p, t: (p.at - t0) / 1000 })),
    samples: samples.map((s) => ({ t: Math.round((s.at - t0) / 1000), live: s.live, rss: s.rss.map(Math.round) })),
  };
  writeFileSync(OUT, `${JSON.stringify(record, null, 2)}\n`);
  printTable(record);
  say(`written to ${OUT}`);
  return record.verdict === "PASS";
}

/**
 * The workers' events (besides task events): counts by name, and the first 50 with their time in the run.
 * @param {number} t0
 */
function summarizeEvents(t0) {
  /** @type {Record<string, number>} */
  const counts = {};
  for (const e of workerEvents) counts[e.event] = (counts[e.event] ?? 0) + 1;
  const first = workerEvents
    .filter((e) => e.event !== "beat" && e.event !== "swept")
    .slice(0, 50)
    .map((e) => ({ t: (e.at - t0) / 1000, pid: e.pid, event: e.event, data: e.data }));
  return { counts, first };
}

/**
 * The last tenth against the first: ratios where a flat run stays near 1.
 * @param {Slice} a
 * @param {Slice} b
 */
function compare(a, b) {
  const r = (/** @type {number} */ x, /** @type {number} */ y) => Number((y / x).toFixed(2));
  return {
    claimP99: r(a.claimMs.p99, b.claimMs.p99),
    claimP50: r(a.claimMs.p50, b.claimMs.p50),
    drainRate: r(a.drainRate, b.drainRate),
    tasksMib: r(a.tasksMib, b.tasksMib),
    workerRssMib: r(Math.max(...a.workerRssMib), Math.max(...b.workerRssMib)),
  };
}

/** @param {any} rec */
function printTable(rec) {
  const rows = /** @type {Slice[]} */ (rec.slices);
  say("");
  say(
    "slice  drain/s  claim p50/p99/max ms  live MiB  done MiB  live dead  done dead  autovac live/done  rss MiB" +
      "  wait p99  dash p99  purged",
  );
  for (const s of rows) {
    const live = s.tables.tasks_live;
    const fin = s.tables.tasks_done;
    say(
      [
        `${(s.index + 1) * 10}%`.padStart(5),
        String(Math.round(s.drainRate)).padStart(8),
        `${s.claimMs.p50.toFixed(1)}/${s.claimMs.p99.toFixed(1)}/${s.claimMs.max.toFixed(0)}`.padStart(21),
        (live?.mib ?? NaN).toFixed(1).padStart(9),
        (fin?.mib ?? NaN).toFixed(1).padStart(9),
        String(live?.dead).padStart(10),
        String(fin?.dead).padStart(10),
        `${live?.autovacuums}/${fin?.autovacuums}`.padStart(18),
        s.workerRssMib
          .map((x) => x.toFixed(0))
          .join("/")
          .padStart(8),
        s.waiters.p99Ms.toFixed(0).padStart(9),
        s.dashboard.p99Ms.toFixed(0).padStart(9),
        String(s.purge.deleted).padStart(7),
      ].join(" "),
    );
  }
  say(`verdict ${rec.verdict}; first to last tenth: ${JSON.stringify(rec.firstToLast)}`);
}

/** @type {boolean | undefined} */
let ok;
try {
  ok = await main();
} finally {
  await admin?.end().catch(() => {});
  for (const w of workers) w.kill("SIGKILL");
  await postgres.destroy();
  await redis.destroy();
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(ok === true ? 0 : 1);

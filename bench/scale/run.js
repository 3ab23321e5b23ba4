// @ts-check
// `node bench/scale/run.js` (after `npm run build`): skiplock on several hosts, each a network namespace joined to a
// database host by a veth link (bench/scale/lab.js, the same network test/netns.test.ts builds). Measures:
//   1. drain rate with one worker host against two (two `run-worker` processes per host), for no-op tasks and for
//      tasks that wait a few milliseconds, in alternating rounds;
//   2. recovery from a cut: one of two hosts loses its link mid-drain; how long until its tasks are swept and
//      completed elsewhere, and the surviving host's rate meanwhile.
// Prints a table and writes bench/scale/latest.json (the record of the last run, committed). Needs root and `ip`;
// see bench/README.md, "Scale-out across hosts".
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { SkiplockClient, migrate } from "../../dist/src/index.js";
import { NetnsLab, netnsUnavailable, sleep } from "./lab.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const ROOT = join(HERE, "..", "..");
const CLI = join(ROOT, "dist", "bin", "skiplock.js");
const TASKS = join(HERE, "tasks.js");

const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    noop: { type: "string", default: "20000" },
    nap: { type: "string", default: "4000" },
    "nap-ms": { type: "string", default: "100" },
    concurrency: { type: "string", default: "16" },
    "stale-after": { type: "string", default: "5" },
    out: { type: "string", default: join(HERE, "latest.json") },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});
if (flags.help) {
  process.stdout.write(`usage: node bench/scale/run.js [--rounds N] [--noop N] [--nap N] [--nap-ms MS]
                          [--concurrency N] [--stale-after S] [--out FILE]\n`);
  process.exit(0);
}
const num = (/** @type {string} */ name, /** @type {string | undefined} */ v) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, got ${v}`);
  return n;
};
const ROUNDS = num("rounds", flags.rounds);
const NOOP = num("noop", flags.noop);
const NAP = num("nap", flags.nap);
const NAP_MS = num("nap-ms", flags["nap-ms"]);
const CONCURRENCY = num("concurrency", flags.concurrency);
const STALE_AFTER = num("stale-after", flags["stale-after"]);
const HEARTBEAT = Math.max(0.2, STALE_AFTER / 5);
const PER_HOST = 2;

const why = netnsUnavailable();
if (why) {
  process.stderr.write(`bench/scale needs network namespaces: ${why}\n`);
  process.exit(2);
}

const lab = new NetnsLab(2);
let cleaned = false;
process.on("exit", () => {
  if (!cleaned) lab.killNow();
});
for (const signal of /** @type {const} */ (["SIGINT", "SIGTERM"])) {
  process.on(signal, () => process.exit(130));
}
const say = (/** @type {string} */ m) => process.stdout.write(`${m}\n`);

/**
 * A `run-worker` inside worker host `host` (1-based); resolves once it reported worker:started.
 * @param {number} host
 * @param {string} schema
 */
async function startWorker(host, schema) {
  const ns = /** @type {string} */ (lab.hosts[host - 1]);
  const args = [CLI, "run-worker", "--tasks", TASKS, "--concurrency", String(CONCURRENCY), "--retry", "5"];
  args.push("--heartbeat-interval", String(HEARTBEAT), "--stale-after", String(STALE_AFTER));
  args.push("--poll-interval", "0.5", "--shutdown-timeout", "2", "--log-level", "error");
  const env = { ...process.env, DATABASE_URL: lab.databaseUrl, REDIS_URL: lab.redisUrl, SKIPLOCK_SCHEMA: schema };
  const child = lab.spawnIn(ns, process.execPath, args, { stdio: ["ignore", "inherit", "inherit", "ipc"], env });
  /** @type {{ event: string, data: any, at: number }[]} */
  const events = [];
  child.on("message", (/** @type {any} */ m) => events.push({ ...m, at: Date.now() }));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const deadline = Date.now() + 30_000;
  while (!events.some((e) => e.event === "worker:started")) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`worker on host ${host} did not start`);
    await sleep(50);
  }
  const id = /** @type {string} */ (events.find((e) => e.event === "worker:started")?.data.workerId);
  return { host, child, events, exited, id };
}
/** @typedef {Awaited<ReturnType<typeof startWorker>>} BenchWorker */

/** @param {BenchWorker[]} workers */
async function stopWorkers(workers) {
  for (const w of workers) if (w.child.exitCode === null) w.child.kill("SIGTERM");
  await Promise.race([Promise.all(workers.map((w) => w.exited)), sleep(15_000)]);
  for (const w of workers) if (w.child.exitCode === null) w.child.kill("SIGKILL");
}

/** @type {pg.Pool} */
let admin = /** @type {any} */ (null);

/** A fresh schema with `count` tasks queued; returns its name and a client on it. */
async function queued(/** @type {string} */ schema, /** @type {string} */ name, /** @type {number} */ count) {
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await migrate({ databaseUrl: lab.localDatabaseUrl, schema });
  const client = new SkiplockClient({ databaseUrl: lab.localDatabaseUrl, schema });
  for (let from = 0; from < count; from += 1000) {
    const n = Math.min(1000, count - from);
    await client.createTasks(Array.from({ length: n }, () => ({ name, args: name === "nap" ? [NAP_MS] : [] })));
  }
  await client.close();
  await admin.query(`VACUUM ANALYZE "${schema}".tasks`);
}

/** @param {string} schema */
async function live(schema) {
  const { rows } = await admin.query(
    `SELECT count(*)::int AS n FROM "${schema}".tasks WHERE status IN ('PENDING', 'PROGRESS')`,
  );
  return /** @type {number} */ (rows[0].n);
}

/** Tasks/s of a finished drain, from its rows: completed ÷ (last finish − first start). */
async function drainRate(/** @type {string} */ schema) {
  const { rows } = await admin.query(
    `SELECT count(*)::int AS n, extract(epoch FROM max(finished_at) - min(started_at))::float8 AS s
       FROM "${schema}".tasks WHERE status = 'COMPLETED'`,
  );
  return { tasks: rows[0].n, seconds: rows[0].s, rate: rows[0].n / rows[0].s };
}

/**
 * Drains `count` tasks of `name` with `hosts` worker hosts; returns the drain's figures.
 * @param {number} hosts
 * @param {string} name
 * @param {number} count
 */
async function drain(hosts, name, count) {
  const schema = `scale_${name}_${hosts}`;
  await queued(schema, name, count);
  const starting = [];
  for (let h = 1; h <= hosts; h++) for (let j = 0; j < PER_HOST; j++) starting.push(startWorker(h, schema));
  const workers = await Promise.all(starting);
  const deadline = Date.now() + 600_000;
  while ((await live(schema)) > 0) {
    if (Date.now() > deadline) throw new Error(`drain of ${name} on ${hosts} host(s) did not finish in 600 s`);
    await sleep(100);
  }
  await stopWorkers(workers);
  const figures = await drainRate(schema);
  await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
  return figures;
}

/** One of two hosts loses its link mid-drain of naps; how the cluster recovers. */
async function cutRecovery() {
  const schema = "scale_cut";
  const count = NAP;
  await queued(schema, "nap", count);
  const starting = [];
  for (let h = 1; h <= 2; h++) for (let j = 0; j < PER_HOST; j++) starting.push(startWorker(h, schema));
  const workers = await Promise.all(starting);
  const cutIds = workers.filter((w) => w.host === 1).map((w) => w.id);
  const done = async () => count - (await live(schema));
  while ((await done()) < count / 4) await sleep(20);
  const before = await admin.query(
    `SELECT count(*)::int AS n FROM "${schema}".tasks WHERE finished_at > now() - interval '2 seconds'`,
  );
  const cutAt = Date.now();
  lab.cutHost(1);
  await sleep(500); // statements already at Postgres commit
  const { rows: held } = await admin.query(
    `SELECT id FROM "${schema}".tasks WHERE status = 'PROGRESS' AND worker_id = ANY($1::text[])`,
    [cutIds],
  );
  const heldIds = held.map((r) => r.id);
  /** @type {number | null} */ let sweptAt = null;
  /** @type {number | null} */ let recoveredAt = null;
  /** Where the held tasks are, every quarter second: seconds since the cut, then counts. */
  /** @type {{ t: number, heldByCutHost: number, pending: number, runningElsewhere: number, completed: number }[]} */
  const timeline = [];
  const deadline = cutAt + 120_000;
  while (recoveredAt === null && Date.now() < deadline) {
    const { rows } = await admin.query(
      `SELECT count(*) FILTER (WHERE status = 'PROGRESS' AND worker_id = ANY($2::text[]))::int AS held,
              count(*) FILTER (WHERE status = 'PENDING')::int AS pending,
              count(*) FILTER (WHERE status = 'PROGRESS' AND worker_id <> ALL($2::text[]))::int AS elsewhere,
              count(*) FILTER (WHERE status = 'COMPLETED')::int AS completed
         FROM "${schema}".tasks WHERE id = ANY($1::bigint[])`,
      [heldIds, cutIds],
    );
    const r = rows[0];
    const t = (Date.now() - cutAt) / 1000;
    timeline.push({
      t,
      heldByCutHost: r.held,
      pending: r.pending,
      runningElsewhere: r.elsewhere,
      completed: r.completed,
    });
    if (sweptAt === null && r.held === 0) sweptAt = Date.now();
    if (r.completed === heldIds.length) recoveredAt = Date.now();
    else await sleep(250);
  }
  // The surviving host's rate while the other is cut, over the next two seconds.
  const survivors = await admin.query(
    `SELECT count(*)::int AS n FROM "${schema}".tasks WHERE finished_at > now() - interval '2 seconds'`,
  );
  await sleep(Math.max(0, cutAt + 2 * STALE_AFTER * 1000 - Date.now()));
  lab.restoreHost(1);
  const restoredAt = Date.now();
  while ((await live(schema)) > 0 && Date.now() < restoredAt + 120_000) await sleep(100);
  await sleep(2000); // late outcomes of the cut host arrive
  await stopWorkers(workers);
  const discarded = workers
    .filter((w) => w.host === 1)
    .flatMap((w) => w.events.filter((e) => e.event === "outcome:discarded")).length;
  const { rows: totals } = await admin.query(
    `SELECT count(*) FILTER (WHERE status = 'COMPLETED')::int AS completed, count(*)::int AS total,
            count(*) FILTER (WHERE attempt > 1)::int AS rerun FROM "${schema}".tasks`,
  );
  await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
  const s = (/** @type {number | null} */ at) => (at === null ? null : (at - cutAt) / 1000);
  return {
    staleAfter: STALE_AFTER,
    heartbeatInterval: HEARTBEAT,
    heldAtCut: heldIds.length,
    sweptAfterSeconds: s(sweptAt),
    recoveredAfterSeconds: s(recoveredAt),
    restoredAfterSeconds: s(restoredAt),
    rateBeforeCut: before.rows[0].n / 2,
    rateWhileCut: survivors.rows[0].n / 2,
    lateOutcomesDiscarded: discarded,
    rerun: totals[0].rerun,
    completed: totals[0].completed,
    total: totals[0].total,
    timeline,
  };
}

const median = (/** @type {number[]} */ xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  const at = (/** @type {number} */ i) => /** @type {number} */ (s[i]);
  return s.length % 2 ? at(m) : (at(m - 1) + at(m)) / 2;
};

async function main() {
  const started = Date.now();
  const loadStart = os.loadavg()[0];
  lab.postgresSettings = []; // fsync and synchronous_commit on, as in production
  lab.build();
  await lab.startServers();
  admin = new pg.Pool({ connectionString: lab.localDatabaseUrl, max: 2 });
  const version = (await admin.query("SHOW server_version")).rows[0].server_version;
  say(`skiplock scale-out: ${ROUNDS} round(s), 2 run-worker x --concurrency ${CONCURRENCY} per host`);

  /** @type {Record<string, number[]>} drain rates by "name/hosts" */
  const rates = {};
  /** @type {unknown[]} */
  const runs = [];
  /** @type {Awaited<ReturnType<typeof cutRecovery>>[]} */
  const cuts = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order: 1 host first in even rounds, 2 hosts first in odd ones.
    const order = round % 2 === 0 ? [1, 2] : [2, 1];
    for (const [name, count] of /** @type {const} */ ([
      ["noop", NOOP],
      ["nap", NAP],
    ])) {
      for (const hosts of order) {
        const r = await drain(hosts, name, count);
        (rates[`${name}/${hosts}`] ??= []).push(r.rate);
        runs.push({ round, name, hosts, ...r });
        say(`  round ${round + 1} ${name.padEnd(4)} ${hosts} host(s): ${Math.round(r.rate)} tasks/s`);
      }
    }
    const cut = await cutRecovery();
    cuts.push(cut);
    say(
      `  round ${round + 1} cut: ${cut.heldAtCut} held, swept after ${cut.sweptAfterSeconds} s, ` +
        `completed elsewhere after ${cut.recoveredAfterSeconds} s (--stale-after ${STALE_AFTER})`,
    );
  }

  const row = (/** @type {string} */ label, /** @type {"noop" | "nap"} */ name) => {
    const one = median(rates[`${name}/1`] ?? []);
    const two = median(rates[`${name}/2`] ?? []);
    return { label, oneHost: Math.round(one), twoHosts: Math.round(two), ratio: two / one };
  };
  const table = [row(`drain ${NOOP} no-ops (tasks/s)`, "noop"), row(`drain ${NAP} ${NAP_MS} ms naps (tasks/s)`, "nap")];
  say("");
  say("metric (median of rounds)            1 host   2 hosts   2/1");
  for (const t of table) {
    say(
      `${t.label.padEnd(36)} ${String(t.oneHost).padStart(6)}  ${String(t.twoHosts).padStart(8)}  ${t.ratio.toFixed(2)}x`,
    );
  }
  const seconds = (/** @type {(number | null)[]} */ xs) => xs.map((x) => (x === null ? "-" : x.toFixed(1))).join(" ");
  say(`cut of one of two hosts, --stale-after ${STALE_AFTER} s, per round:`);
  say(`  tasks the cut host held:              ${cuts.map((c) => c.heldAtCut).join(" ")}`);
  say(`  swept after (s):                      ${seconds(cuts.map((c) => c.sweptAfterSeconds))}`);
  say(`  all of them completed elsewhere (s):  ${seconds(cuts.map((c) => c.recoveredAfterSeconds))}`);
  say(`  late outcomes discarded:              ${cuts.map((c) => c.lateOutcomesDiscarded).join(" ")}`);
  say(`  tasks/s in the 2 s before the cut:    ${cuts.map((c) => c.rateBeforeCut).join(" ")}`);
  say(`  tasks/s in the 2 s before recovery:   ${cuts.map((c) => c.rateWhileCut).join(" ")}`);
  const record = {
    when: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      postgres: version,
    },
    loadAverage: { start: loadStart, end: os.loadavg()[0] },
    code: spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).stdout.trim(),
    settings: { rounds: ROUNDS, perHost: PER_HOST, concurrency: CONCURRENCY, napMs: NAP_MS, staleAfter: STALE_AFTER },
    table,
    cuts,
    runs,
    seconds: (Date.now() - started) / 1000,
  };
  writeFileSync(/** @type {string} */ (flags.out), `${JSON.stringify(record, null, 2)}\n`);
  say(`written to ${flags.out}`);
}

try {
  await main();
} finally {
  await admin?.end().catch(() => {});
  await lab.destroy();
  cleaned = true;
}

// @ts-check
// The drain through PgBouncer (pool_mode = transaction) beside the direct connection, in the same run: a private
// PgBouncer on a free port in front of the bench's Postgres, and three ways for the same worker to reach Postgres,
// taken in turn each round: directly with the defaults, directly with `pgbouncer: true` (unnamed statements, claims
// committed synchronously: the cost of the mode alone), and through PgBouncer with `pgbouncer: true` (the mode plus
// the extra hop). Measurements only.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { migrate } from "../../dist/src/index.js";
import { skiplockNamespace } from "../lib/systems.js";
import { DATABASE_URL, REDIS_URL, WorkerChild, median, sleep, uniqueSuffix } from "../lib/util.js";

const SKIPLOCK_CLI = fileURLToPath(new URL("../../dist/bin/skiplock.js", import.meta.url));
const SKIPLOCK_TASKS = fileURLToPath(new URL("../workers/skiplock-tasks.js", import.meta.url));

/** @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts PgBouncer with its own defaults but for the pool mode (transaction) and the listen address; as root, as the
 * `postgres` user (it refuses to run as root).
 * @returns {Promise<{ url: string, stop: () => Promise<void> }>}
 */
export async function startPgBouncer() {
  const which = spawnSync("sh", ["-c", "command -v pgbouncer"], { encoding: "utf8" });
  const bin = which.status === 0 ? which.stdout.trim() : "";
  if (!bin) throw new Error("pgbouncer is not installed (apt-get install pgbouncer)");
  const asPostgres =
    process.getuid?.() === 0
      ? {
          uid: Number(spawnSync("id", ["-u", "postgres"]).stdout.toString().trim()),
          gid: Number(spawnSync("id", ["-g", "postgres"]).stdout.toString().trim()),
        }
      : {};
  const dir = mkdtempSync(join(tmpdir(), "skiplock-bench-pgbouncer-"));
  chmodSync(dir, 0o700);
  /** @param {string} path */
  const own = (path) => {
    if (asPostgres.uid !== undefined) chownSync(path, asPostgres.uid, /** @type {number} */ (asPostgres.gid));
  };
  own(dir);
  const target = new URL(DATABASE_URL);
  const user = decodeURIComponent(target.username || "postgres");
  const database = decodeURIComponent(target.pathname.slice(1) || "postgres");
  const port = await freePort();
  const auth = join(dir, "userlist.txt");
  writeFileSync(auth, `"${user}" ""\n`);
  own(auth);
  const ini = join(dir, "pgbouncer.ini");
  writeFileSync(
    ini,
    [
      "[databases]",
      `${database} = host=${target.hostname} port=${target.port || 5432} dbname=${database} user=${user}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${auth}`,
      "pool_mode = transaction",
      "ignore_startup_parameters = extra_float_digits",
      "logfile =",
      "pidfile =",
      "",
    ].join("\n"),
  );
  own(ini);
  const child = spawn(bin, [ini], { stdio: "ignore", cwd: dir, ...asPostgres });
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const url = new URL(DATABASE_URL);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const c = new pg.Client({ connectionString: url.toString() });
    c.on("error", () => {});
    try {
      await c.connect();
      await c.query("SELECT 1");
      break;
    } catch (err) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`pgbouncer did not start: ${/** @type {Error} */ (err).message}`, { cause: err });
      }
      await sleep(100);
    } finally {
      await c.end().catch(() => {});
    }
  }
  return {
    url: url.toString(),
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGINT");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** @typedef {{ name: string, label: string, env: (bouncerUrl: string) => Record<string, string> }} Route */

/** @type {Route[]} */
const ROUTES = [
  { name: "direct", label: "direct", env: () => ({ DATABASE_URL }) },
  {
    name: "directSessionless",
    label: "direct, pgbouncer: true",
    env: () => ({ DATABASE_URL, SKIPLOCK_PGBOUNCER: "1" }),
  },
  {
    name: "pgbouncer",
    label: "through PgBouncer",
    env: (bouncerUrl) => ({ DATABASE_URL: bouncerUrl, SKIPLOCK_PGBOUNCER: "1" }),
  },
];

/**
 * `rounds` rounds; in each, every route drains `tasks` pre-queued no-ops at `concurrency` (the order rotated each
 * round). `drain` is the benchmark's own drain measurement (bench/run.js).
 * @param {{ rounds: number, tasks: number, concurrency: number, batchSize: number,
 *   drain: (ns: any, expect: number, o: { sampleMs: number }) => Promise<{ child: WorkerChild, drain: Record<string, any> }>,
 *   log: (line: string) => void }} o
 */
export async function pgbouncerDrains(o) {
  const bouncer = await startPgBouncer();
  /** @type {Record<string, number[]>} */
  const rates = Object.fromEntries(ROUTES.map((r) => [r.name, []]));
  /** @type {Record<string, number[]>} */
  const postgresCpu = Object.fromEntries(ROUTES.map((r) => [r.name, []]));
  try {
    for (let round = 0; round < o.rounds; round++) {
      const order = ROUTES.map((_, k) => /** @type {Route} */ (ROUTES[(k + round) % ROUTES.length]));
      for (const route of order) {
        const schema = `bench_sk_pgb_${uniqueSuffix()}`;
        await migrate({ databaseUrl: DATABASE_URL, schema });
        const ns = skiplockNamespace(schema);
        /** @type {WorkerChild | null} */
        let child = null;
        try {
          for (let from = 0; from < o.tasks; from += o.batchSize)
            await ns.enqueueBatch("noop", from, Math.min(o.batchSize, o.tasks - from));
          const routed = {
            ...ns,
            /** @param {{ concurrency: number }} w */
            startWorker: (w) =>
              new WorkerChild(
                `skiplock ${route.name}`,
                [SKIPLOCK_CLI, "run-worker", "--tasks", SKIPLOCK_TASKS, "--concurrency", String(w.concurrency)],
                { REDIS_URL, SKIPLOCK_SCHEMA: schema, SKIPLOCK_LOG_LEVEL: "warn", ...route.env(bouncer.url) },
              ),
          };
          const d = await o.drain(routed, o.tasks, { sampleMs: 100 });
          child = d.child;
          rates[route.name]?.push(d.drain.rate);
          postgresCpu[route.name]?.push(d.drain.postgresCpuSeconds);
          o.log(
            `  pgbouncer line, round ${round + 1}, ${route.label}: drain ${Math.round(d.drain.rate)}/s, ` +
              `postgres CPU ${d.drain.postgresCpuSeconds.toFixed(2)} s`,
          );
        } finally {
          await child?.stop();
          await ns.drop();
        }
      }
    }
  } finally {
    await bouncer.stop();
  }
  return {
    tasks: o.tasks,
    concurrency: o.concurrency,
    rounds: o.rounds,
    routes: Object.fromEntries(
      ROUTES.map((r) => [
        r.name,
        {
          label: r.label,
          rates: rates[r.name],
          medianRate: median(rates[r.name] ?? []),
          medianPostgresCpuSeconds: median(postgresCpu[r.name] ?? []),
        },
      ]),
    ),
  };
}

/** @param {Awaited<ReturnType<typeof pgbouncerDrains>>} r */
export function pgbouncerSection(r) {
  const direct = r.routes.direct?.medianRate ?? NaN;
  const lines = Object.values(r.routes).map(
    (x) =>
      `  ${x.label.padEnd(26)} ${String(Math.round(x.medianRate)).padStart(8)} tasks/s  (${(x.medianRate / direct).toFixed(2)} of direct; ` +
      `rounds ${x.rates?.map((v) => Math.round(v)).join(" ")}; postgres CPU ${x.medianPostgresCpuSeconds.toFixed(2)} s)`,
  );
  return `drain of ${r.tasks} no-ops @${r.concurrency}, median of ${r.rounds} round(s), by route to Postgres:\n${lines.join("\n")}`;
}

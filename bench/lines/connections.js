// @ts-check
// The drain with the worker held to fewer connections: the same worker (`run-worker --concurrency 32`) drains the
// same pre-queued no-ops with its default layout (a pool of 4, a claim connection, a heartbeat connection: 6), with
// `--max-connections 2` (one pooled connection that also claims, and the heartbeat's) and with `--max-connections 1`
// (one connection for everything, the beats on the main thread). Alternating rounds, the order rotated each round;
// the most backends the worker held at once is counted in pg_stat_activity while it drains. Measurements only.
//
//   npm run build && node bench/lines/connections.js [--rounds 3] [--tasks 5000]
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { migrate, SkiplockClient } from "../../dist/src/index.js";
import { DATABASE_URL, REDIS_URL, WorkerChild, median, nowMs, pollUntil, uniqueSuffix } from "../lib/util.js";

const SKIPLOCK_CLI = fileURLToPath(new URL("../../dist/bin/skiplock.js", import.meta.url));
const SKIPLOCK_TASKS = fileURLToPath(new URL("../workers/skiplock-tasks.js", import.meta.url));
const CONCURRENCY = 32;

/** @typedef {{ name: string, label: string, args: string[] }} Layout */

/** @type {Layout[]} */
const LAYOUTS = [
  { name: "default", label: "default (6)", args: [] },
  { name: "two", label: "--max-connections 2", args: ["--max-connections", "2"] },
  { name: "one", label: "--max-connections 1", args: ["--max-connections", "1"] },
];

/**
 * One drain: a fresh schema, `tasks` no-ops enqueued, then a worker started with `layout`; timed from its first
 * task's start to the moment none is left PENDING or PROGRESS.
 * @param {pg.Pool} admin @param {Layout} layout @param {number} tasks
 */
async function drainOnce(admin, layout, tasks) {
  const schema = `bench_sk_conn_${uniqueSuffix()}`;
  await migrate({ databaseUrl: DATABASE_URL, schema });
  const client = new SkiplockClient({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, schema });
  /** @type {WorkerChild | null} */
  let child = null;
  try {
    for (let from = 0; from < tasks; from += 1000) {
      const n = Math.min(1000, tasks - from);
      await client.createTasks(Array.from({ length: n }, (_, i) => ({ name: "noop", args: [from + i] })));
    }
    child = new WorkerChild(
      `skiplock ${layout.name}`,
      [SKIPLOCK_CLI, "run-worker", "--tasks", SKIPLOCK_TASKS, "--concurrency", String(CONCURRENCY), ...layout.args],
      {
        DATABASE_URL,
        REDIS_URL,
        SKIPLOCK_SCHEMA: schema,
        SKIPLOCK_LOG_LEVEL: "warn",
      },
    );
    const running = child;
    await running.waitFor("the first task", () => running.firstAt !== null, 60_000);
    let peak = 0;
    await pollUntil(
      `${layout.name}: all tasks COMPLETED`,
      async () => {
        // Its pool's and claim connection's "skiplock worker <host>:<pid>:<random>", its heartbeat's likewise.
        const seen = await admin.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND application_name LIKE 'skiplock %:' || $1 || ':%'`,
          [String(running.pid)],
        );
        peak = Math.max(peak, seen.rows[0].n);
        const r = await admin.query(
          `SELECT NOT EXISTS (SELECT 1 FROM "${schema}".tasks WHERE status IN ('PENDING', 'PROGRESS')) AS done`,
        );
        return r.rows[0].done === true;
      },
      300_000,
      20,
      running,
    );
    const seconds = (nowMs() - /** @type {number} */ (running.firstAt)) / 1000;
    return { rate: tasks / seconds, peak };
  } finally {
    await child?.stop();
    await client.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
}

async function main() {
  const { values } = parseArgs({
    options: { rounds: { type: "string", default: "3" }, tasks: { type: "string", default: "5000" } },
  });
  const rounds = Number(values.rounds);
  const tasks = Number(values.tasks);
  const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
  /** @type {Record<string, { rates: number[], peaks: number[] }>} */
  const results = Object.fromEntries(LAYOUTS.map((l) => [l.name, { rates: [], peaks: [] }]));
  try {
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < LAYOUTS.length; k++) {
        const layout = /** @type {Layout} */ (LAYOUTS[(k + round) % LAYOUTS.length]);
        const r = await drainOnce(admin, layout, tasks);
        results[layout.name]?.rates.push(r.rate);
        results[layout.name]?.peaks.push(r.peak);
        console.log(
          `round ${round + 1}, ${layout.label}: ${Math.round(r.rate)} tasks/s, at most ${r.peak} connection(s)`,
        );
      }
    }
  } finally {
    await admin.end();
  }
  const base = median(results.default?.rates ?? []);
  console.log(`\ndrain of ${tasks} no-ops @${CONCURRENCY}, median of ${rounds} round(s):`);
  for (const l of LAYOUTS) {
    const r = /** @type {{ rates: number[], peaks: number[] }} */ (results[l.name]);
    console.log(
      `  ${l.label.padEnd(22)} ${String(Math.round(median(r.rates))).padStart(7)} tasks/s  ` +
        `(${(median(r.rates) / base).toFixed(2)} of default; rounds ${r.rates.map(Math.round).join(" ")}; ` +
        `at most ${Math.max(...r.peaks)} connection(s))`,
    );
  }
}

await main();

// @ts-check
// The dashboard's lists on a big history: a schema with a million finished rows and a few thousand live ones, read
// through the dashboard's JSON API (its fetch handler: routing, the query, JSON; no network). Reports p50 and p95 per
// request. `node bench/lines/dashboard-lists.js [--finished N] [--samples N] [--keep]` runs it alone; bench/run.js
// runs it as its "lists" scenario. Measurements only: nothing here asserts a speed.
import { parseArgs } from "node:util";
import pg from "pg";
import { createDashboard, migrate, SkiplockClient } from "../../dist/src/index.js";
import { DATABASE_URL, nowMs, percentile, uniqueSuffix } from "../lib/util.js";

const TOKEN = "bench-token-0123456789abcdef";

/**
 * Fills `schema` the way its tables store tasks: finished rows go to tasks_done through the partitioned parent (one
 * INSERT … SELECT generate_series), finished over the last 10 hours in id order as a worker leaves them. 2.7% FAILED,
 * 0.5% CANCELLED, the rest COMPLETED (moduli prime to each other, so statuses, queues and names mix); queues default 90%, email 9%, reports 1%; 13 names, and "report.rare" on about
 * one row in 10,000. Then live rows: `live` PENDING over default, email and a queue only live rows use ("fresh"), and
 * 50 PROGRESS. VACUUM ANALYZE at the end, as autovacuum would have done on a table that grew this slowly.
 * @param {pg.Pool} pool @param {string} schema @param {number} finished @param {number} live
 */
async function fill(pool, schema, finished, live) {
  const t = `"${schema}".tasks`;
  await pool.query(
    `INSERT INTO ${t} (name, args, queue, status, result, error, attempt, worker_id, run_at, created_at, updated_at,
                       started_at, finished_at, duration)
     SELECT CASE WHEN g % 9973 = 1 THEN 'report.rare' ELSE 'job.' || (g % 13) END,
            jsonb_build_array(g, 'x' || g),
            CASE WHEN g % 100 = 0 THEN 'reports' WHEN g % 10 = 5 THEN 'email' ELSE 'default' END,
            s.status,
            CASE WHEN s.status = 'COMPLETED' THEN jsonb_build_object('ok', true, 'n', g) END,
            CASE WHEN s.status = 'FAILED' THEN 'Error: boom ' || g || E'\n    at handler (tasks.js:1:1)' END,
            1, 'bench-host:1:deadbeef', f.at - interval '2 s', f.at - interval '2 s', f.at, f.at - interval '0.2 s',
            f.at, 0.2
       FROM generate_series(1, $1::int) g
      CROSS JOIN LATERAL (SELECT now() - ($1::int - g) * (36000.0 / $1::int) * interval '1 s' AS at) f
      CROSS JOIN LATERAL (SELECT CASE WHEN g % 199 = 7 THEN 'CANCELLED' WHEN g % 37 = 3 THEN 'FAILED'
                                      ELSE 'COMPLETED' END AS status) s`,
    [finished],
  );
  await pool.query(
    `INSERT INTO ${t} (name, args, queue, status, run_at)
     SELECT 'job.' || (g % 13), jsonb_build_array(g),
            CASE WHEN g % 3 = 0 THEN 'email' WHEN g % 3 = 1 THEN 'fresh' ELSE 'default' END,
            'PENDING', now() - (g % 600) * interval '1 s'
       FROM generate_series(1, $1::int) g`,
    [live],
  );
  await pool.query(
    `INSERT INTO ${t} (name, args, queue, status, attempt, worker_id, heartbeat_at, started_at)
     SELECT 'job.' || (g % 13), '[]', 'default', 'PROGRESS', 1, 'bench-host:2:cafebabe', now(), now()
       FROM generate_series(1, 50) g`,
  );
  await pool.query(`VACUUM ANALYZE "${schema}".tasks_done`);
  await pool.query(`VACUUM ANALYZE "${schema}".tasks_live`);
}

/**
 * The id whose older rows of `status` are the last `fraction` of them: a keyset page deep in the list.
 * @param {pg.Pool} pool @param {string} schema @param {string} status @param {number} fraction
 */
async function deepId(pool, schema, status, fraction) {
  const { rows } = await pool.query(
    `SELECT id::text FROM "${schema}".tasks WHERE status = $1 ORDER BY id
      LIMIT 1 OFFSET (SELECT (count(*) * $2::float8)::bigint FROM "${schema}".tasks WHERE status = $1)`,
    [status, fraction],
  );
  return rows[0]?.id;
}

/**
 * @param {{ finished?: number, live?: number, samples?: number, warmup?: number, keep?: boolean,
 *   log?: (line: string) => void }} [o]
 */
export async function dashboardLists(o = {}) {
  const finished = o.finished ?? 1_000_000;
  const live = o.live ?? 3_000;
  const samples = o.samples ?? 30;
  const warmup = o.warmup ?? 3;
  const log = o.log ?? ((line) => process.stderr.write(`${line}\n`));
  const schema = `bench_lists_${uniqueSuffix()}`;
  await migrate({ databaseUrl: DATABASE_URL, schema });
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
  const client = new SkiplockClient({ databaseUrl: DATABASE_URL, schema, redisUrl: null });
  try {
    const t0 = nowMs();
    await fill(pool, schema, finished, live);
    const fillSeconds = (nowMs() - t0) / 1000;
    log(`lists: ${finished} finished and ${live + 50} live rows in ${fillSeconds.toFixed(1)} s`);

    const dashboard = createDashboard({ client, token: TOKEN });
    /** @param {string} path @param {typeof dashboard} [d] */
    const get = async (path, d = dashboard) => {
      const res = await d.fetch(
        new Request(`http://127.0.0.1:4680${path}`, { headers: { authorization: `Bearer ${TOKEN}` } }),
      );
      const body = await res.text();
      if (res.status !== 200) throw new Error(`${path}: ${res.status} ${body}`);
      return body;
    };
    /** @param {() => Promise<unknown>} fn */
    const time = async (fn) => {
      for (let i = 0; i < warmup; i++) await fn();
      /** @type {number[]} */
      const ms = [];
      for (let i = 0; i < samples; i++) {
        const s = nowMs();
        await fn();
        ms.push(nowMs() - s);
      }
      return { p50Ms: percentile(ms, 50), p95Ms: percentile(ms, 95), samples };
    };

    const deep = {
      FAILED: await deepId(pool, schema, "FAILED", 0.02),
      COMPLETED: await deepId(pool, schema, "COMPLETED", 0.02),
      CANCELLED: await deepId(pool, schema, "CANCELLED", 0.02),
      PENDING: await deepId(pool, schema, "PENDING", 0.02),
    };
    /** @type {[string, string][]} */
    const lists = [];
    for (const status of /** @type {const} */ (["FAILED", "COMPLETED", "CANCELLED", "PENDING"])) {
      lists.push([`${status} first page`, `/api/tasks?status=${status}`]);
      lists.push([`${status} deep page`, `/api/tasks?status=${status}&after=${deep[status]}`]);
    }
    lists.push(
      ["FAILED queue=reports (1%)", "/api/tasks?status=FAILED&queue=reports"],
      ["COMPLETED queue=reports (1%)", "/api/tasks?status=COMPLETED&queue=reports"],
      ["CANCELLED queue=email (9%)", "/api/tasks?status=CANCELLED&queue=email"],
      ["PENDING queue=email", "/api/tasks?status=PENDING&queue=email"],
      ["FAILED name=report.rare", "/api/tasks?status=FAILED&name=report.rare"],
      ["COMPLETED name=report.rare (0.01%)", "/api/tasks?status=COMPLETED&name=report.rare"],
      ["COMPLETED queue=fresh (no finished row)", "/api/tasks?status=COMPLETED&queue=fresh"],
      ["any status, queue=reports", "/api/tasks?queue=reports"],
      ["FAILED,CANCELLED first page", "/api/tasks?status=FAILED,CANCELLED"],
    );

    /** @type {Record<string, { p50Ms: number, p95Ms: number, samples: number, rows?: number }>} */
    const results = {};
    for (const [label, path] of lists) {
      const rows = JSON.parse(await get(path)).tasks.length;
      results[label] = { ...(await time(() => get(path))), rows };
      log(`lists: ${label}: p50 ${results[label].p50Ms.toFixed(1)} ms (${rows} rows)`);
    }
    // Cold: a new dashboard each time has an empty stats cache; cached: the same one, within its 2 s.
    results["api/stats cold"] = await time(() => get("/api/stats", createDashboard({ client, token: TOKEN })));
    results["api/stats cached"] = await time(() => get("/api/stats"));
    const { rows: ids } = await pool.query(
      `(SELECT id::text FROM "${schema}".tasks WHERE status = 'COMPLETED' ORDER BY random() LIMIT 20)
       UNION ALL (SELECT id::text FROM "${schema}".tasks WHERE status = 'PENDING' ORDER BY random() LIMIT 20)`,
    );
    let i = 0;
    results["task detail by id"] = await time(() => get(`/api/tasks/${ids[i++ % ids.length].id}`));
    for (const label of ["api/stats cold", "api/stats cached", "task detail by id"]) {
      log(`lists: ${label}: p50 ${results[label]?.p50Ms.toFixed(1)} ms`);
    }
    return { finished, live: live + 50, samples, fillSeconds, results };
  } finally {
    await client.close();
    if (!o.keep) await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
    else log(`lists: kept schema ${schema}`);
    await pool.end();
  }
}

/**
 * The scenario's lines for the benchmark's printed output.
 * @param {Awaited<ReturnType<typeof dashboardLists>>} r
 */
export function listsTable(r) {
  const rows = Object.entries(r.results).map(
    ([label, x]) =>
      `  ${label.padEnd(42)} ${x.p50Ms.toFixed(1).padStart(8)} ${x.p95Ms.toFixed(1).padStart(8)}` +
      `${x.rows === undefined ? "" : `  ${String(x.rows).padStart(4)} rows`}`,
  );
  return [
    `dashboard API on ${r.finished.toLocaleString("en")} finished + ${r.live.toLocaleString("en")} live rows ` +
      `(${r.samples} samples each, ms):`,
    `  ${"request".padEnd(42)} ${"p50".padStart(8)} ${"p95".padStart(8)}`,
    ...rows,
  ].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      finished: { type: "string" },
      samples: { type: "string" },
      keep: { type: "boolean", default: false },
    },
    strict: true,
  });
  const r = await dashboardLists({
    ...(values.finished ? { finished: Number(values.finished) } : {}),
    ...(values.samples ? { samples: Number(values.samples) } : {}),
    keep: values.keep ?? false,
  });
  process.stdout.write(`${listsTable(r)}\n`);
}

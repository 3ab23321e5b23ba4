// How many Postgres connections skiplock holds, counted in pg_stat_activity by application_name while the pieces are
// busy: a worker at most poolSize + 2 (its pool, its claim connection, its heartbeat thread's connection), a client
// and a dashboard at most the client's poolSize. And through PgBouncer, however many workers there are, Postgres
// sees no more than PgBouncer's pool. See docs/architecture.md, PgBouncer and connections.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createDashboard, SkiplockClient } from "../src/index.js";
import { quiet, stopProc, waitFor, WorkerProcs } from "./helpers.js";
import { PrivatePgBouncer } from "./private-pgbouncer.js";
import { ofWorker, peakWhile as peakOf, workerId } from "./backend-counts.js";
import { schemaFixture } from "./schema-fixture.js";
import { missingTools } from "./system-tools.js";

// A database of the file's own: the counts below see no other test file's connections.
const env = schemaFixture({ label: "connections", database: "own" });
const workers = new WorkerProcs(
  () => env.schema,
  ["--concurrency", "16", "--poll-interval", "0.05", "--heartbeat-interval", "0.1", "--stale-after", "5"],
  () => ({ DATABASE_URL: env.databaseUrl }),
);
afterEach(() => workers.killAll());
afterAll(() => workers.killAll());

const TOKEN = "connections-test-token";

/** Samples backends until `work` settles; the most each `count` saw at once. */
async function peakWhile<K extends string>(
  work: Promise<unknown>,
  counts: Record<K, (seen: Map<string, number>) => number>,
): Promise<Record<K, number>> {
  return (await peakOf(env.pool, work, counts)).peak;
}

/**
 * Enqueues `count` short tasks and a few that last long enough for heartbeats (through `databaseUrl`, default the
 * database itself), and waits until all completed.
 */
async function drain(count: number, databaseUrl = env.databaseUrl, pgbouncer = false): Promise<void> {
  const client = new SkiplockClient({
    databaseUrl,
    redisUrl: null,
    schema: env.schema,
    logger: quiet,
    poolSize: 2,
    pgbouncer,
  });
  try {
    const done = (
      await env.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${env.schema}".tasks WHERE status = 'COMPLETED'`,
      )
    ).rows[0]!.n;
    const created = await client.createTasks([
      ...Array.from({ length: 40 }, () => ({ name: "sleep", args: [400] })),
      ...Array.from({ length: count }, (_, i) => ({ name: "multiply", args: [i, 2] })),
    ]);
    await waitFor(
      "the drain",
      async () => {
        const r = await env.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM "${env.schema}".tasks WHERE status = 'COMPLETED'`,
        );
        return r.rows[0]!.n >= done + created.length;
      },
      60_000,
      20,
    );
  } finally {
    await client.close();
  }
}

describe("a worker process", () => {
  it("holds at most poolSize + 2 connections: five busy workers, each within 6", async () => {
    const procs = await Promise.all(Array.from({ length: 5 }, () => workers.start()));
    const ids = await Promise.all(procs.map(workerId));
    const peak = await peakWhile(
      drain(5000),
      Object.fromEntries(ids.map((id) => [id, ofWorker(id)])) as Record<string, (s: Map<string, number>) => number>,
    );
    for (const id of ids) {
      expect(peak[id], `worker ${id}`).toBeLessThanOrEqual(6);
      // Its claim connection and one of its pool at least (its heartbeat connects only while it holds a task, and
      // which worker claims the long tasks is up to them): the counts saw the worker.
      expect(peak[id], `worker ${id}`).toBeGreaterThanOrEqual(2);
    }
  });

  it("holds at most 3 with --pool-size 1", async () => {
    const p = await workers.start(["--pool-size", "1"]);
    const id = await workerId(p);
    const peak = await peakWhile(drain(3000), { worker: ofWorker(id) });
    expect(peak.worker).toBe(3);
    await stopProc(p, "SIGTERM");
  });
});

describe("a client and a dashboard", () => {
  it("hold at most the client's poolSize, however many calls are in flight", async () => {
    const client = new SkiplockClient({
      databaseUrl: env.databaseUrl,
      redisUrl: null,
      schema: env.schema,
      logger: quiet,
      poolSize: 3,
    });
    const dashboardClient = new SkiplockClient({
      databaseUrl: env.databaseUrl,
      redisUrl: null,
      schema: env.schema,
      logger: quiet,
    });
    try {
      const task = await client.createTask("multiply", [1, 2], { delay: 3600 });
      const calls = Promise.all(Array.from({ length: 60 }, () => client.getTask(task.id)));
      const clientPeak = await peakWhile(calls, { client: (seen) => seen.get("skiplock client") ?? 0 });
      expect(clientPeak.client).toBeLessThanOrEqual(3);
      expect(clientPeak.client).toBeGreaterThanOrEqual(1);
      await client.close();

      // The dashboard's queries go through its client: the default poolSize, 10.
      const dashboard = createDashboard({ client: dashboardClient, token: TOKEN, logger: quiet });
      const get = (path: string) =>
        dashboard.fetch(new Request(`http://127.0.0.1/${path}`, { headers: { authorization: `Bearer ${TOKEN}` } }));
      const requests = Promise.all(
        Array.from({ length: 40 }, (_, i) => get(i % 2 ? "api/stats" : "api/tasks")).map(async (r) => {
          expect((await r).status).toBe(200);
        }),
      );
      const dashboardPeak = await peakWhile(requests, { dashboard: (seen) => seen.get("skiplock client") ?? 0 });
      expect(dashboardPeak.dashboard).toBeLessThanOrEqual(10);
      expect(dashboardPeak.dashboard).toBeGreaterThanOrEqual(1);
    } finally {
      await client.close();
      await dashboardClient.close();
    }
  });
});

describe.skipIf(missingTools("pgbouncer"))("through PgBouncer", () => {
  let bouncer: PrivatePgBouncer | null = null;
  afterAll(async () => {
    await workers.killAll();
    await bouncer?.stop();
  });

  it("five workers leave Postgres no more than PgBouncer's four server connections", async () => {
    bouncer = new PrivatePgBouncer({ targetUrl: env.databaseUrl, poolSize: 4 });
    await bouncer.start();
    const url = bouncer.url;
    await Promise.all(
      Array.from({ length: 5 }, () => workers.start([], { DATABASE_URL: url, SKIPLOCK_PGBOUNCER: "1" })),
    );
    // Every named backend of this database (the test's own pool has no name): PgBouncer's server connections, which
    // carry the name of the client they serve.
    const peak = await peakWhile(drain(3000, url, true), {
      server: (seen) => [...seen.values()].reduce((a, b) => a + b, 0),
    });
    expect(peak.server).toBeGreaterThanOrEqual(1);
    expect(peak.server).toBeLessThanOrEqual(4);
  });
});

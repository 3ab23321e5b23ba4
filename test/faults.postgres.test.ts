// Fault injection: Postgres backends of every skiplock connection terminated, again and again, while workers run a
// stream of tasks. Runs in a database of its own, so terminating "every skiplock backend in the database" touches
// no other test file.
import { describe, expect, it } from "vitest";
import { insertTasks } from "../src/sql/insert.js";
import { prepareTask } from "../src/task.js";
import { pathToFileURL } from "node:url";
import { faultFixture } from "./fault-fixture.js";
import { FAST_SWEEP, readLedger, ROOT, spawnProc, taskRows, waitFor } from "./helpers.js";

const TASKS = 300;
const ROUNDS = 10;

const env = faultFixture({
  label: "faults_pg",
  database: "own",
  workerFlags: [...FAST_SWEEP, "--poll-interval", "0.2"],
  pollInterval: 0.2,
});

async function ledgerSize(): Promise<number> {
  const { rows } = await env.pool.query(`SELECT count(*)::int AS n FROM "${env.schema}".ledger`);
  return rows[0].n;
}

describe("Postgres backends terminated mid-run", () => {
  it("workers recover and nothing is lost: every task COMPLETED, none run more than twice", async () => {
    for (let i = 0; i < 2; i++) {
      await env.worker(["--concurrency", "4", "--retry", "1"]);
    }
    // Enqueued through the test's own pool (not named skiplock…, so never terminated), with the statement the client
    // uses: this test is about the workers. (The client's own resilience is the next test.)
    const rows = await insertTasks(
      env.pool,
      `"${env.schema}".tasks`,
      Array.from({ length: TASKS }, (_, i) => prepareTask({ name: "sleep", args: [20 + (i % 5) * 20] })),
    );
    const ids = rows.map((r) => r.id);
    await waitFor("both workers' heartbeat connections", async () => {
      const r = await env.pool.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'skiplock heartbeat %' AND datname = current_database()`,
      );
      return r.rows[0].n === 2;
    });

    const terminated: Record<string, number> = {};
    for (let round = 0; round < ROUNDS; round++) {
      const before = await ledgerSize();
      if (before >= TASKS) break;
      const r = await env.pool.query(
        `SELECT pg_terminate_backend(pid) AS ok, application_name FROM pg_stat_activity
          WHERE application_name LIKE 'skiplock%' AND datname = current_database() AND pid <> pg_backend_pid()`,
      );
      for (const x of r.rows) {
        const kind = x.application_name.split(" ")[1] as string;
        terminated[kind] = (terminated[kind] ?? 0) + 1;
      }
      // Paced by the workers' progress, not by a clock: each round waits until they have started more tasks.
      await waitFor(
        `the workers to make progress after round ${round + 1}`,
        async () => (await ledgerSize()) >= Math.min(before + 15, TASKS),
        20_000,
      );
    }
    // Both workers' heartbeat and pool connections were hit, again and again. (Not every round finds every kind: a
    // connection killed in one round may not be back by the next.)
    expect(terminated.heartbeat).toBeGreaterThanOrEqual(2);
    expect(terminated.worker).toBeGreaterThanOrEqual(ROUNDS);

    await waitFor(
      "every task to reach COMPLETED",
      async () => {
        const { rows } = await env.pool.query(
          `SELECT count(*)::int AS n FROM "${env.schema}".tasks WHERE status = 'COMPLETED'`,
        );
        return rows[0].n === TASKS;
      },
      60_000,
      100,
    );

    const ledger = await readLedger(env.pool, env.schema);
    const tasks = await taskRows(env.pool, env.schema);
    expect(tasks.size).toBe(TASKS);
    for (const id of ids) {
      const runs = ledger.get(id) ?? [];
      expect(runs.length).toBeGreaterThanOrEqual(1);
      expect(runs.length).toBeLessThanOrEqual(2);
      // A second run only ever follows a sweep (a lost attempt), which uses the retry if its start was recorded.
      expect(tasks.get(id)).toMatchObject({ status: "COMPLETED", attempt: runs.length });
      expect(tasks.get(id)!.retry_count).toBeLessThanOrEqual(runs.length - 1);
    }

    for (const p of env.workers.all) {
      expect(p.child.exitCode).toBeNull();
      // Each worker noticed: its heartbeat connection was killed under it, and came back.
      expect(p.events.map((e) => e.event)).toContain("beat:restored");
    }
    // And a worker that went through all that still shuts down cleanly.
    for (const p of env.workers.all) {
      p.child.kill("SIGTERM");
      expect((await p.exited).code).toBe(0);
    }
  });

  it("a SkiplockClient whose backends are terminated while it reads keeps its process alive", async () => {
    // A process that only reads tasks through a client (as an app calling getTask / waitForCompletion does), while
    // its backends are terminated under it. A query that fails may reject; the process must not die.
    const task = await env.client.createTask("recorded", ["probe"]);
    const code = `
      import { SkiplockClient } from ${JSON.stringify(pathToFileURL(`${ROOT}dist/src/index.js`).href)};
      const client = new SkiplockClient({ redisUrl: null, logger: { debug() {}, info() {}, warn() {}, error() {} } });
      let reads = 0, errors = 0;
      for (let i = 0; i < 800; i++) {
        try { await client.getTask(${JSON.stringify(task.id)}); reads++; } catch { errors++; }
      }
      console.log(JSON.stringify({ reads, errors }));
      await client.close();
    `;
    const child = spawnProc(process.execPath, ["--input-type=module", "-e", code], {
      DATABASE_URL: env.databaseUrl,
      SKIPLOCK_SCHEMA: env.schema,
    });
    let terminated = 0;
    while (child.child.exitCode === null && child.child.signalCode === null) {
      const r = await env.pool.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = 'skiplock client' AND datname = current_database() AND pid <> pg_backend_pid()`,
      );
      terminated += r.rowCount ?? 0;
    }
    const exit = await child.exited;
    // Died of an uncaught 'error' event ("terminating connection due to administrator command") otherwise.
    expect(child.output()).not.toMatch(/terminating connection due to administrator command/);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(terminated).toBeGreaterThan(10);
    const counts = JSON.parse(child.output().trim().split("\n").at(-1)!);
    expect(counts.reads + counts.errors).toBe(800);
    expect(counts.reads).toBeGreaterThan(0);
  });
});

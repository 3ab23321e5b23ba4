// Fault injection: Postgres down for longer than --stale-after, on a server of this file's own. When it comes back,
// every heartbeat is older than --stale-after; the sweeper must not take that for dead workers.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { insertTasks } from "../src/sql/insert.js";
import { prepareTask } from "../src/task.js";
import { migratedWithLedger, readLedger, uniqueName, waitFor, WorkerProcs } from "./helpers.js";
import { PrivatePostgres } from "./private-postgres.js";

const STALE_AFTER = 2;
const FLAGS = ["--heartbeat-interval", "0.5", "--stale-after", String(STALE_AFTER), "--poll-interval", "0.2"];

let server: PrivatePostgres;
let pool: pg.Pool;
const schema = uniqueName("faults_outage");
const workers = new WorkerProcs(
  () => schema,
  FLAGS,
  () => ({ DATABASE_URL: server.url }),
);

beforeAll(async () => {
  server = new PrivatePostgres();
  await server.init();
  pool = await migratedWithLedger(server.url, schema);
});

afterAll(async () => {
  await workers.killAll();
  await pool?.end();
  await server?.destroy();
});

/** Rows by status, retrying while the server is coming back. */
async function statuses(): Promise<Record<string, number> | null> {
  try {
    const { rows } = await pool.query(`SELECT status, count(*)::int AS n FROM "${schema}".tasks GROUP BY status`);
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  } catch {
    return null;
  }
}

describe("Postgres stopped for longer than --stale-after", () => {
  for (const mode of ["fast", "immediate"] as const) {
    it(`sweeps none of the healthy workers' tasks once it is back (${mode} shutdown)`, async () => {
      for (let i = 0; i < 3; i++) await workers.start(["--concurrency", "4", "--retry", "1"]);
      const inserted = await insertTasks(
        pool,
        `"${schema}".tasks`,
        Array.from({ length: 60 }, () => prepareTask({ name: "sleep", args: [400] })),
      );
      const ids = inserted.map((t) => t.id);
      // Every worker has tasks running when the server goes.
      await waitFor("tasks running on all three workers", async () => {
        const { rows } = await pool.query(
          `SELECT count(DISTINCT worker_id)::int AS n FROM "${schema}".tasks WHERE status = 'PROGRESS' AND started_at IS NOT NULL`,
        );
        return rows[0].n === 3;
      });

      await server.stop(mode);
      const stoppedAt = Date.now();
      // The fault itself: the outage lasts well past --stale-after.
      await waitFor(
        "the outage to outlast --stale-after",
        () => Date.now() - stoppedAt > 2.5 * STALE_AFTER * 1000,
        30_000,
        100,
      );
      await server.start();

      await waitFor(
        "every task to finish",
        async () => {
          const s = await statuses();
          return s !== null && (s.PENDING ?? 0) + (s.PROGRESS ?? 0) === 0;
        },
        60_000,
        200,
      );

      const { rows } = await pool.query(
        `SELECT id::text, status, error FROM "${schema}".tasks WHERE id = ANY($1::bigint[])`,
        [ids],
      );
      const notCompleted = rows.filter((r) => r.status !== "COMPLETED");
      expect(notCompleted).toEqual([]);
      expect(rows.filter((r) => /worker lost/.test(r.error ?? ""))).toEqual([]);
      // No task ran twice: none was taken from a worker that was still running it.
      const ledger = await readLedger(pool, schema);
      const twice = ids.filter((id) => (ledger.get(id)?.length ?? 0) > 1);
      expect(twice).toEqual([]);
      await workers.killAll();
    }, 120_000);
  }
});

// Fault injection: Postgres down for longer than --stale-after, on a server of this file's own. When it comes back,
// every heartbeat is older than --stale-after; the sweeper must not take that for dead workers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { insertTasks } from "../src/sql/insert.js";
import { prepareTask } from "../src/task.js";
import { faultFixture } from "./fault-fixture.js";
import { migratedWithLedger, readLedger, statusCounts, waitFor } from "./helpers.js";
import { PrivatePostgres } from "./private-postgres.js";

const STALE_AFTER = 2;
const FLAGS = ["--heartbeat-interval", "0.5", "--stale-after", String(STALE_AFTER), "--poll-interval", "0.2"];

let server: PrivatePostgres;
beforeAll(async () => {
  server = new PrivatePostgres();
  await server.init();
});
afterAll(() => server?.destroy());

const env = faultFixture({
  label: "faults_outage",
  workerFlags: FLAGS,
  // A schema on the file's own server; it goes with the server.
  database: async (schema) => {
    const pool = await migratedWithLedger(server.url, schema);
    return { databaseUrl: server.url, schema, pool, drop: () => pool.end() };
  },
});

/** Rows by status, or null while the server is coming back. */
const statuses = () => statusCounts(env.pool, env.schema).catch(() => null);

describe("Postgres stopped for longer than --stale-after", () => {
  for (const mode of ["fast", "immediate"] as const) {
    it(`sweeps none of the healthy workers' tasks once it is back (${mode} shutdown)`, async () => {
      for (let i = 0; i < 3; i++) await env.worker(["--concurrency", "4", "--retry", "1"]);
      const inserted = await insertTasks(
        env.pool,
        `"${env.schema}".tasks`,
        Array.from({ length: 60 }, () => prepareTask({ name: "sleep", args: [400] })),
      );
      const ids = inserted.map((t) => t.id);
      // Every worker has tasks running when the server goes.
      await waitFor("tasks running on all three workers", async () => {
        const { rows } = await env.pool.query(
          `SELECT count(DISTINCT worker_id)::int AS n FROM "${env.schema}".tasks WHERE status = 'PROGRESS' AND started_at IS NOT NULL`,
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

      const { rows } = await env.pool.query(
        `SELECT id::text, status, error FROM "${env.schema}".tasks WHERE id = ANY($1::bigint[])`,
        [ids],
      );
      const notCompleted = rows.filter((r) => r.status !== "COMPLETED");
      expect(notCompleted).toEqual([]);
      expect(rows.filter((r) => /worker lost/.test(r.error ?? ""))).toEqual([]);
      // No task ran twice: none was taken from a worker that was still running it.
      const ledger = await readLedger(env.pool, env.schema);
      const twice = ids.filter((id) => (ledger.get(id)?.length ?? 0) > 1);
      expect(twice).toEqual([]);
    }, 120_000);
  }
});

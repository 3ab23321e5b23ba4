import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidOptionError, SkiplockClient } from "../src/index.js";
import { DATABASE_URL, freshSchema, quiet, runCli } from "./helpers.js";
import { ON_EMBEDDED, serverOnly } from "./embedded-place.js";

let env: Awaited<ReturnType<typeof freshSchema>>;
let client: SkiplockClient;

/** Writes rows in any state, as a factory: `n` tasks with this status, finished `daysAgo` days ago. */
async function insertRows(n: number, status: string, daysAgo: number | null): Promise<void> {
  await env.pool.query(
    `INSERT INTO "${env.schema}".tasks (name, status, finished_at)
     SELECT 'old', $2, CASE WHEN $3::float8 IS NULL THEN NULL ELSE now() - $3::float8 * interval '1 day' END
       FROM generate_series(1, $1)`,
    [n, status, daysAgo],
  );
}

const counts = async () => {
  const r = await env.pool.query(`SELECT status, count(*)::int AS n FROM "${env.schema}".tasks GROUP BY status`);
  return Object.fromEntries(r.rows.map((x) => [x.status, x.n]));
};

beforeAll(async () => {
  env = await freshSchema("purge");
  client = new SkiplockClient({ databaseUrl: DATABASE_URL, schema: env.schema, redisUrl: null, logger: quiet });
  await insertRows(120, "COMPLETED", 10);
  await insertRows(30, "FAILED", 10);
  await insertRows(7, "CANCELLED", 10);
  await insertRows(40, "COMPLETED", 0.1); // recent: kept
  await insertRows(5, "PENDING", null); // never touched
  await insertRows(5, "PROGRESS", null);
});

afterAll(async () => {
  await client.close();
  await env.drop();
});

describe("purgeTasks", () => {
  it("counts without deleting on a dry run", async () => {
    const r = await client.purgeTasks({ olderThanDays: 1, dryRun: true, batchSize: 25 });
    // Every finished row read (197); the live ones are in another partition, never read.
    expect(r).toEqual({ deleted: 157, scanned: 197, dryRun: true });
    expect(await counts()).toEqual({ COMPLETED: 160, FAILED: 30, CANCELLED: 7, PENDING: 5, PROGRESS: 5 });
  });

  it("deletes only the chosen statuses finished before the cutoff, in batches", async () => {
    const steps: number[] = [];
    const r = await client.purgeTasks({
      olderThanDays: 1,
      statuses: ["FAILED"],
      batchSize: 25,
      onProgress: (m) => steps.push(m),
    });
    expect(r.deleted).toBe(30);
    expect(steps.length).toBeGreaterThan(5);
    expect(await counts()).toEqual({ COMPLETED: 160, CANCELLED: 7, PENDING: 5, PROGRESS: 5 });
    const all = await client.purgeTasks({ olderThanDays: 1 });
    expect(all.deleted).toBe(127);
    expect(await counts()).toEqual({ COMPLETED: 40, PENDING: 5, PROGRESS: 5 });
  });

  it("refuses live statuses and bad numbers", async () => {
    await expect(client.purgeTasks({ olderThanDays: 1, statuses: ["PENDING" as never] })).rejects.toBeInstanceOf(
      InvalidOptionError,
    );
    await expect(client.purgeTasks({ olderThanDays: -1 })).rejects.toBeInstanceOf(InvalidOptionError);
    // A number of days, checked as days (not as seconds, whose bound is ten years' worth of them).
    await expect(client.purgeTasks({ olderThanDays: 40_000 })).rejects.toThrow(
      /^invalid option olderThanDays: expected days between 0 and 36500, got 40000$/,
    );
    await expect(client.purgeTasks({ olderThanDays: 1, batchSize: 0 })).rejects.toBeInstanceOf(InvalidOptionError);
  });

  serverOnly(ON_EMBEDDED.processes)("runs from the CLI", async () => {
    await insertRows(3, "COMPLETED", 5);
    const env2 = { DATABASE_URL, SKIPLOCK_SCHEMA: env.schema };
    const dry = await runCli(["purge", "--days", "2", "--dry-run"], env2);
    expect(dry).toMatchObject({ code: 0 });
    expect(dry.stdout).toMatch(/would delete 3 tasks/);
    const real = await runCli(["purge", "--days", "2", "--status", "completed", "--batch-size", "2"], env2);
    expect(real.stdout).toMatch(/deleted 3 tasks/);
    const bad = await runCli(["purge", "--days", "2", "--status", "PENDING"], env2);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/choose among COMPLETED, FAILED and CANCELLED/);
  });

  it("the live partition is set up for heavy churn", async () => {
    const r = await env.pool.query(`SELECT reloptions FROM pg_class WHERE oid = $1::regclass`, [
      `"${env.schema}".tasks_live`,
    ]);
    expect(r.rows[0].reloptions).toContain("autovacuum_vacuum_scale_factor=0.01");
  });
});

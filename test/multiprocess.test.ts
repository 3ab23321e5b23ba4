import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SkiplockClient } from "../src/index.js";
import {
  DATABASE_URL,
  REDIS_URL,
  freshSchema,
  quiet,
  startWorkerProcess,
  stopProc,
  waitFor,
  type Proc,
} from "./helpers.js";

let env: Awaited<ReturnType<typeof freshSchema>>;
let client: SkiplockClient;
const procs: Proc[] = [];

beforeAll(async () => {
  env = await freshSchema("multi");
  client = new SkiplockClient({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, schema: env.schema, logger: quiet });
});

afterAll(async () => {
  await Promise.all(procs.map((p) => stopProc(p)));
  await client.close();
  await env.drop();
});

describe("several worker processes", () => {
  it("run 500 tasks across 3 processes, each exactly once", async () => {
    // Workers first, all idle, so the one wake-up reaches all three (tasks queued before a slow starter is up could
    // all be taken by the first one).
    procs.push(...(await Promise.all([1, 2, 3].map(() => startWorkerProcess(env.schema, ["--concurrency", "4"])))));
    const tasks = await client.createTasks(Array.from({ length: 500 }, (_, i) => ({ name: "recorded", args: [i] })));
    await waitFor(
      "all 500 completed",
      async () => {
        const r = await env.pool.query(
          `SELECT count(*)::int AS n FROM "${env.schema}".tasks WHERE status = 'COMPLETED'`,
        );
        return r.rows[0].n === 500;
      },
      60_000,
      100,
    );
    const ledger = await env.pool.query(
      `SELECT task_id, count(*)::int AS runs FROM "${env.schema}".ledger GROUP BY task_id`,
    );
    expect(ledger.rowCount).toBe(500);
    expect(ledger.rows.every((r) => r.runs === 1)).toBe(true);
    const ids = new Set(tasks.map((t) => t.id));
    expect(ledger.rows.every((r) => ids.has(String(r.task_id)))).toBe(true);
    // The work was shared: every process ran some.
    const perPid = await env.pool.query(`SELECT pid, count(*)::int AS n FROM "${env.schema}".ledger GROUP BY pid`);
    expect(perPid.rowCount).toBe(3);
    const results = await env.pool.query(`SELECT args->>0 AS arg, result FROM "${env.schema}".tasks`);
    expect(results.rows.every((r) => String(r.result) === r.arg)).toBe(true);
  });
});

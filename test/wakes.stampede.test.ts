import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SkiplockClient } from "../src/index.js";
import { DATABASE_URL, REDIS_URL, freshSchema, quiet, WorkerProcs, type Proc } from "./helpers.js";

// Twenty idle worker processes, each with its own subscriber, hear every wake-up. Wake tokens let about as many
// of them claim as there are new tasks (docs/architecture.md, "Wake-ups that do not stampede"); before them every
// enqueue made all twenty claim.

const WORKERS = 20;
let env: Awaited<ReturnType<typeof freshSchema>>;
let client: SkiplockClient;
const procs = new WorkerProcs(
  () => env.schema,
  // A poll far beyond the test's length: every claim counted here was made by a wake-up.
  ["--concurrency", "1", "--poll-interval", "600", "--ipc-task-events"],
);
const workers: Proc[] = [];

/** Claim statements the workers sent (and got an answer to) so far. */
const claims = () => workers.reduce((n, p) => n + p.events.filter((e) => e.event === "claim:answered").length, 0);

beforeAll(async () => {
  env = await freshSchema("stampede");
  client = new SkiplockClient({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, schema: env.schema, logger: quiet });
  // Four at a time: twenty node processes starting at once on a loaded machine take longer than a start may.
  for (let i = 0; i < WORKERS; i += 4) workers.push(...(await Promise.all([1, 2, 3, 4].map(() => procs.start()))));
  // Each worker claims once as it starts; the count starts after those.
  await Promise.all(workers.map((p) => p.waitForEvent("claim:answered")));
}, 300_000);

afterAll(async () => {
  await procs.killAll();
  await client.close();
  await env.drop();
});

async function ledgerRuns(): Promise<Map<string, number>> {
  const r = await env.pool.query(`SELECT task_id, count(*)::int AS runs FROM "${env.schema}".ledger GROUP BY task_id`);
  return new Map(r.rows.map((row) => [String(row.task_id), row.runs as number]));
}

describe("wake-ups with 20 idle worker processes", () => {
  it("one enqueue at a time: about one claim statement per task, and every task runs once", async () => {
    const before = claims();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const task = await client.createTask("recorded", [i]);
      ids.push(task.id);
      // The gap: the next task is enqueued once this one finished, so each wake-up finds every worker idle.
      const done = await client.waitForCompletion(task.id, { timeout: 20 });
      expect(done?.status).toBe("COMPLETED");
    }
    const perTask = (claims() - before) / ids.length;
    expect(perTask).toBeLessThanOrEqual(1.5);
    const runs = await ledgerRuns();
    for (const id of ids) expect(runs.get(id)).toBe(1);
  }, 120_000);

  it("delayed tasks, one at a time: at each due time about one worker claims, not all twenty", async () => {
    const before = claims();
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const task = await client.createTask("recorded", [i], { delay: 0.2 });
      ids.push(task.id);
      expect((await client.waitForCompletion(task.id, { timeout: 20 }))?.status).toBe("COMPLETED");
    }
    expect((claims() - before) / ids.length).toBeLessThanOrEqual(1.5);
    const runs = await ledgerRuns();
    for (const id of ids) expect(runs.get(id)).toBe(1);
  }, 60_000);

  it("a wake-up for five tasks lets about five claims through, not twenty", async () => {
    const before = claims();
    const tasks = await client.createTasks(Array.from({ length: 5 }, (_, i) => ({ name: "recorded", args: [i] })));
    for (const t of tasks) expect((await client.waitForCompletion(t.id, { timeout: 20 }))?.status).toBe("COMPLETED");
    expect(claims() - before).toBeLessThanOrEqual(8);
    const runs = await ledgerRuns();
    for (const t of tasks) expect(runs.get(t.id)).toBe(1);
  }, 60_000);
});

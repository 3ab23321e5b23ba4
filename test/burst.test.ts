import { describe, expect, it } from "vitest";
import { InvalidOptionError, Worker, defineTask, taskContext } from "../src/index.js";
import { CLI, DATABASE_URL, FIXTURE_TASKS, quiet, REDIS_URL, spawnProc, statusCounts, taskRows } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";
import { nextEvent } from "./worker-events.js";

const env = workerFixture({ label: "burst", deleteTasksAfterEach: true });

/** `skiplock run-worker` with `args`, run until it exits on its own. */
async function runWorker(args: string[]): Promise<{ code: number | null; events: string[]; output: string }> {
  const p = spawnProc(process.execPath, [CLI, "run-worker", "--tasks", FIXTURE_TASKS, ...args], {
    DATABASE_URL,
    REDIS_URL,
    SKIPLOCK_SCHEMA: env.schema,
  });
  const { code } = await p.exited;
  return { code, events: p.events.map((e) => e.event), output: p.output() };
}

/** A Worker on the file's schema, not started. */
function newWorker(options: ConstructorParameters<typeof Worker>[0]): Worker {
  return new Worker({
    databaseUrl: env.databaseUrl,
    redisUrl: env.redisUrl,
    schema: env.schema,
    logger: quiet,
    ...options,
  });
}

describe("run-worker --burst", () => {
  it("runs every due task, leaves tasks due later, and exits 0", async () => {
    const due = await env.client.createTasks(
      Array.from({ length: 40 }, (_, i) => ({ name: "multiply", args: [i, 2] })),
    );
    const later = await env.client.createTask("multiply", [1, 1], { delay: 3600 });
    const run = await runWorker(["--burst", "--concurrency", "4"]);
    expect(run.code, run.output).toBe(0);
    expect(run.events).toEqual(expect.arrayContaining(["worker:started", "worker:stopping", "worker:stopped"]));
    const rows = await taskRows(env.pool, env.schema);
    for (const t of due) expect(rows.get(t.id)).toMatchObject({ status: "COMPLETED" });
    expect(rows.get(later.id)).toMatchObject({ status: "PENDING", attempt: 0 });
  });

  it("exits 0 at once when nothing is due", async () => {
    const run = await runWorker(["--burst"]);
    expect(run.code, run.output).toBe(0);
  });
});

describe("run-worker --max-tasks", () => {
  it("runs exactly N tasks, never claims the others, and exits 0", async () => {
    await env.client.createTasks(Array.from({ length: 20 }, (_, i) => ({ name: "multiply", args: [i, 3] })));
    const run = await runWorker(["--max-tasks", "5", "--concurrency", "2"]);
    expect(run.code, run.output).toBe(0);
    expect(await statusCounts(env.pool, env.schema)).toEqual({ COMPLETED: 5, PENDING: 15 });
    const { rows } = await env.pool.query(
      `SELECT count(*)::int AS n FROM "${env.schema}".tasks WHERE status = 'PENDING' AND worker_id IS NULL AND attempt = 0`,
    );
    expect(rows[0].n).toBe(15);
  });

  it("stops at whichever comes first with --burst", async () => {
    await env.client.createTasks(Array.from({ length: 3 }, () => ({ name: "multiply", args: [1, 1] })));
    const run = await runWorker(["--max-tasks", "10", "--burst"]);
    expect(run.code, run.output).toBe(0);
    expect(await statusCounts(env.pool, env.schema)).toEqual({ COMPLETED: 3 });
  });

  it("refuses a count below 1 with a clear line", async () => {
    const run = await runWorker(["--max-tasks", "0"]);
    expect(run.code).toBe(1);
    expect(run.output).toMatch(/--max-tasks/);
  });
});

describe("worker.runUntilIdle()", () => {
  it("starts the worker, waits for retries that are due at once, then stops it", async () => {
    const flaky = defineTask(
      "flaky",
      () => {
        if (taskContext().attempt === 1) throw new Error("first attempt fails");
        return "ok";
      },
      { backoff: () => 0 },
    );
    const tasks = await env.client.createTasks(Array.from({ length: 10 }, () => ({ name: "flaky", maxRetries: 1 })));
    const worker = newWorker({ tasks: [flaky], concurrency: 3 });
    const stopped = nextEvent(worker, "worker:stopped");
    await worker.runUntilIdle();
    await stopped;
    const rows = await taskRows(env.pool, env.schema);
    for (const t of tasks) expect(rows.get(t.id)).toMatchObject({ status: "COMPLETED", attempt: 2 });
  });

  it("returns once idle on a worker already running", async () => {
    const worker = await env.startWorker({ tasks: { noop: () => null } });
    const t = await env.client.createTask("noop");
    await worker.runUntilIdle();
    expect((await env.client.getTask(t.id))!.status).toBe("COMPLETED");
    expect(worker.running).toBe(0);
  });
});

describe("the maxTasks option", () => {
  it("stops the worker on its own after N tasks", async () => {
    await env.client.createTasks(Array.from({ length: 10 }, () => ({ name: "noop" })));
    const worker = newWorker({ tasks: { noop: () => null }, maxTasks: 3, concurrency: 2 });
    const stopped = nextEvent(worker, "worker:stopped");
    await worker.start();
    await stopped;
    expect(await statusCounts(env.pool, env.schema)).toEqual({ COMPLETED: 3, PENDING: 7 });
  });

  it("is checked", () => {
    for (const maxTasks of [0, -1, 1.5, "3"]) {
      expect(() => newWorker({ tasks: { noop: () => null }, maxTasks: maxTasks as number })).toThrow(
        InvalidOptionError,
      );
    }
  });
});

// Workers held to one or two Postgres connections (maxConnections, `run-worker --max-connections`), counted in
// pg_stat_activity by application_name while they are busy: five processes at 1 drain a mixed load (retries, a
// timeout, heartbeated tasks, a schedule) each task exactly once, a process at 2 stays within 2, and a worker at 1
// killed with SIGKILL mid-drain has its tasks swept back by another. See docs/architecture.md, One connection.
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { InvalidOptionError, SkiplockClient, taskContext, Worker } from "../src/index.js";
import { quiet, readLedger, runCli, stopProc, waitFor, WorkerProcs } from "./helpers.js";
import { ofWorker, peakWhile as peakOf, workerId } from "./backend-counts.js";
import { schemaFixture } from "./schema-fixture.js";

const TASKS = fileURLToPath(new URL("./fixtures/connections-compact-tasks.js", import.meta.url));

// A database of the file's own: the counts below see no other test file's connections.
const env = schemaFixture({ label: "conn_compact", database: "own" });
const workers = new WorkerProcs(
  () => env.schema,
  ["--tasks", TASKS, "--concurrency", "16", "--poll-interval", "0.05", "--heartbeat-interval", "0.1"],
  () => ({ DATABASE_URL: env.databaseUrl }),
);
afterEach(() => workers.killAll());
afterAll(() => workers.killAll());

/** Samples each worker's backends until `work` settles: the most each had at once, and how many samples were taken. */
async function peakWhile(
  work: Promise<unknown>,
  ids: string[],
): Promise<{ peak: Map<string, number>; samples: number }> {
  const r = await peakOf(env.pool, work, Object.fromEntries(ids.map((id) => [id, ofWorker(id)])));
  return { peak: new Map(Object.entries(r.peak)), samples: r.samples };
}

function newClient(): SkiplockClient {
  return new SkiplockClient({
    databaseUrl: env.databaseUrl,
    redisUrl: null,
    schema: env.schema,
    logger: quiet,
    poolSize: 2,
  });
}

/** Resolves once none of `ids` is left unfinished. */
function allFinished(ids: string[], timeoutMs = 120_000): Promise<unknown> {
  return waitFor(
    "every task to finish",
    async () => {
      const r = await env.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${env.schema}".tasks
          WHERE id = ANY($1::bigint[]) AND status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')`,
        [ids],
      );
      return r.rows[0]!.n === 0;
    },
    timeoutMs,
    50,
  );
}

async function statuses(ids: string[]): Promise<Map<string, { status: string; attempt: number }>> {
  const r = await env.pool.query<{ id: string; status: string; attempt: number }>(
    `SELECT id::text, status, attempt FROM "${env.schema}".tasks WHERE id = ANY($1::bigint[])`,
    [ids],
  );
  return new Map(r.rows.map((row) => [row.id, row]));
}

describe("five worker processes at --max-connections 1", () => {
  it("drain 2,000 tasks with retries, a timeout and a schedule, each task once, each process within 1 backend", async () => {
    const schedules = { TEST_SCHEDULES: JSON.stringify([{ name: "every-second", cron: "* * * * * *" }]) };
    const procs = await Promise.all(
      Array.from({ length: 5 }, () =>
        workers.start(["--max-connections", "1", "--stale-after", "5", "--ipc-task-events"], schedules),
      ),
    );
    const ids = await Promise.all(procs.map(workerId));
    const client = newClient();
    const startedAt = Date.now();
    try {
      const recorded = await client.createTasks(
        Array.from({ length: 1900 }, (_, i) => ({ name: "recorded", args: [i] })),
      );
      // Long enough that the main thread's beats, through the one connection, keep them from being swept.
      const sleepers = await client.createTasks(Array.from({ length: 40 }, () => ({ name: "sleep", args: [400] })));
      const flaky = await client.createTasks(
        Array.from({ length: 50 }, () => ({ name: "flaky", args: [], maxRetries: 1 })),
      );
      const timedOut = await client.createTasks(
        Array.from({ length: 10 }, () => ({ name: "sleep", args: [10_000], timeout: 1 })),
      );
      const all = [...recorded, ...sleepers, ...flaky, ...timedOut].map((t) => t.id);
      expect(all).toHaveLength(2000);

      const { peak, samples } = await peakWhile(allFinished(all), ids);
      for (const id of ids) {
        expect(peak.get(id), `worker ${id}`).toBe(1);
      }
      expect(samples).toBeGreaterThan(10);

      const done = await statuses(all);
      const ledger = await readLedger(env.pool, env.schema);
      for (const t of [...recorded, ...sleepers]) {
        expect(done.get(t.id)?.status, t.id).toBe("COMPLETED");
        expect(
          ledger.get(t.id)?.map((e) => e.attempt),
          t.id,
        ).toEqual([1]);
      }
      for (const t of flaky) {
        expect(done.get(t.id)?.status, t.id).toBe("COMPLETED");
        expect(
          ledger.get(t.id)?.map((e) => e.attempt),
          t.id,
        ).toEqual([1, 2]);
      }
      for (const t of timedOut) {
        expect(done.get(t.id)?.status, t.id).toBe("FAILED");
        expect(
          ledger.get(t.id)?.map((e) => e.attempt),
          t.id,
        ).toEqual([1]);
      }
      // Every process did part of the work.
      const pids = new Set([...ledger.values()].flat().map((e) => e.pid));
      expect(pids.size).toBe(5);

      // The schedule: one task per tick across the five, and the ticks ran.
      const ticks = await env.pool.query<{ n: number; status: string[] }>(
        `SELECT count(*)::int AS n, array_agg(status) AS status FROM "${env.schema}".tasks
          WHERE schedule_name = 'every-second' AND schedule_tick >= $1 GROUP BY schedule_tick`,
        [new Date(startedAt)],
      );
      expect(ticks.rows.length).toBeGreaterThan(0);
      expect(ticks.rows.filter((r) => r.n !== 1)).toEqual([]);
      await waitFor("a scheduled tick to run", async () => {
        const r = await env.pool.query(
          `SELECT 1 FROM "${env.schema}".tasks WHERE schedule_name = 'every-second' AND status = 'COMPLETED' LIMIT 1`,
        );
        return r.rowCount! > 0;
      });
      // No task was taken back from a live worker (beats kept up), and no statement failed waiting for the one
      // connection.
      const trouble = ["task:swept", "beat:failed", "worker:error"];
      for (const p of procs) expect(p.events.filter((e) => trouble.includes(e.event))).toEqual([]);
    } finally {
      await client.close();
    }
    await Promise.all(procs.map((p) => stopProc(p, "SIGTERM")));
    for (const p of procs) expect((await p.exited).code).toBe(0);
  });
});

describe("a worker process at --max-connections 2", () => {
  it("holds at most 2 backends: one pool connection that also claims, and its heartbeat thread's", async () => {
    const p = await workers.start(["--max-connections", "2", "--stale-after", "5"]);
    const id = await workerId(p);
    const client = newClient();
    try {
      const tasks = await client.createTasks([
        ...Array.from({ length: 40 }, () => ({ name: "sleep", args: [300] })),
        ...Array.from({ length: 2000 }, (_, i) => ({ name: "multiply", args: [i, 2] })),
      ]);
      const { peak } = await peakWhile(allFinished(tasks.map((t) => t.id)), [id]);
      expect(peak.get(id)).toBeLessThanOrEqual(2);
      expect(peak.get(id)).toBeGreaterThanOrEqual(1);
      const done = await statuses(tasks.map((t) => t.id));
      expect([...done.values()].filter((t) => t.status !== "COMPLETED")).toEqual([]);
    } finally {
      await client.close();
    }
    await stopProc(p, "SIGTERM");
  });
});

describe("a worker at --max-connections 1 killed with SIGKILL mid-drain", () => {
  it("has its tasks swept back and run by another worker at --max-connections 1", async () => {
    const args = ["--max-connections", "1", "--stale-after", "1", "--ipc-task-events"];
    const victim = await workers.start(args);
    const victimId = await workerId(victim);
    const client = newClient();
    try {
      const tasks = await client.createTasks(
        Array.from({ length: 40 }, () => ({ name: "sleep", args: [1500], maxRetries: 1 })),
      );
      await victim.waitForEvent("task:started");
      victim.child.kill("SIGKILL");
      await victim.exited;
      const held = await env.pool.query<{ id: string }>(
        `SELECT id::text FROM "${env.schema}".tasks WHERE worker_id = $1 AND status = 'PROGRESS'`,
        [victimId],
      );
      expect(held.rows.length).toBeGreaterThan(0);

      const sweeper = await workers.start(args);
      await sweeper.waitForEvent("task:swept", () => true, 30_000);
      await allFinished(
        tasks.map((t) => t.id),
        60_000,
      );
      const done = await statuses(tasks.map((t) => t.id));
      expect([...done.values()].filter((t) => t.status !== "COMPLETED")).toEqual([]);
      // The victim's tasks ran again, on the other worker, as their second attempt.
      // Their 1.5 s outlasts staleAfter (1 s): the other worker's beats, on its one connection, kept them.
      const heldIds = new Set(held.rows.map((r) => r.id));
      for (const t of tasks) expect(done.get(t.id)?.attempt, t.id).toBe(heldIds.has(t.id) ? 2 : 1);
      await stopProc(sweeper, "SIGTERM");
    } finally {
      await client.close();
    }
  });
});

describe("CPU-bound handlers at --max-connections 1", () => {
  it("in isolation thread, block no beat: 2.5 s of spinning with staleAfter 1 s, and no sweep", async () => {
    const args = ["--max-connections", "1", "--stale-after", "1"];
    const spinner = await workers.start([...args, "--isolation", "thread"]);
    // Another worker, claiming from another queue, whose sweeper would take the spinning tasks back if their beats
    // stopped.
    const watcher = await workers.start([...args, "--queue", "elsewhere", "--ipc-task-events"]);
    const client = newClient();
    try {
      const tasks = await client.createTasks(
        Array.from({ length: 4 }, () => ({ name: "spin", args: [2500], maxRetries: 1 })),
      );
      await allFinished(
        tasks.map((t) => t.id),
        60_000,
      );
      const done = await statuses(tasks.map((t) => t.id));
      const ledger = await readLedger(env.pool, env.schema);
      for (const t of tasks) {
        expect(done.get(t.id)?.status, t.id).toBe("COMPLETED");
        expect(
          ledger.get(t.id)?.map((e) => e.attempt),
          t.id,
        ).toEqual([1]);
      }
      expect(watcher.events.filter((e) => e.event === "task:swept")).toEqual([]);
    } finally {
      await client.close();
    }
    await Promise.all([stopProc(spinner, "SIGTERM"), stopProc(watcher, "SIGTERM")]);
  });
});

describe("a Worker with maxConnections 1 in this process", () => {
  it("reports progress, hears a cancel through its beats, serves metrics and runs a schedule on its one connection", async () => {
    const worker = new Worker({
      databaseUrl: env.databaseUrl,
      redisUrl: null,
      schema: env.schema,
      logger: quiet,
      maxConnections: 1,
      concurrency: 8,
      pollInterval: 0.05,
      heartbeatInterval: 0.1,
      staleAfter: 2,
      metrics: true,
      schedules: [{ name: "in-process-every-second", cron: "* * * * * *", task: "noop" }],
      tasks: {
        noop: () => null,
        stepped: async () => {
          const ctx = taskContext();
          for (let i = 1; i <= 4; i++) {
            await ctx.progress(i / 4, `step ${i}`);
            await new Promise((r) => setTimeout(r, 50));
          }
          return "done";
        },
        waitForCancel: () =>
          new Promise((_resolve, reject) => {
            const { signal } = taskContext();
            signal.addEventListener("abort", () => reject(signal.reason));
          }),
      },
    });
    const client = newClient();
    await worker.start();
    try {
      const started = new Promise<void>((resolve) =>
        worker.on("task:started", ({ task }) => task.name === "waitForCancel" && resolve()),
      );
      const blocked = await client.createTask("waitForCancel", []);
      const stepped = await client.createTasks(Array.from({ length: 50 }, () => ({ name: "stepped", args: [] })));
      const noops = await client.createTasks(Array.from({ length: 500 }, () => ({ name: "noop", args: [] })));
      const work = (async () => {
        await started;
        await client.cancelTask(blocked.id);
        const scrapes = Promise.all(Array.from({ length: 5 }, () => worker.metrics()));
        await allFinished(
          [blocked, ...stepped, ...noops].map((t) => t.id),
          60_000,
        );
        return scrapes;
      })();
      const { peak } = await peakWhile(work, [worker.id]);
      expect(peak.get(worker.id)).toBe(1);
      for (const text of await work) expect(text).toMatch(/skiplock_tasks\{/);
      const done = await statuses([blocked, ...stepped, ...noops].map((t) => t.id));
      expect(done.get(blocked.id)?.status).toBe("CANCELLED");
      expect([...stepped, ...noops].filter((t) => done.get(t.id)?.status !== "COMPLETED")).toEqual([]);
      expect((await client.getTask(stepped[0]!.id))?.progress?.fraction).toBe(1);
      await waitFor("a scheduled tick to run", async () => {
        const r = await env.pool.query(
          `SELECT 1 FROM "${env.schema}".tasks WHERE schedule_name = 'in-process-every-second' AND status = 'COMPLETED'`,
        );
        return r.rowCount! > 0;
      });
    } finally {
      await worker.stop();
      await client.close();
    }
  });
});

describe("a Worker with maxConnections 1 whose connection is stuck", () => {
  it("waits past pg's 10 s pool timeout for it: no failed beat or write, and the drain goes on", async () => {
    const worker = new Worker({
      databaseUrl: env.databaseUrl,
      redisUrl: null,
      schema: env.schema,
      logger: quiet,
      maxConnections: 1,
      concurrency: 4,
      pollInterval: 0.05,
      heartbeatInterval: 0.2,
      tasks: { nap: (ms: number) => new Promise((r) => setTimeout(() => r(ms), ms)) },
    });
    const failures: string[] = [];
    worker.on("beat:failed", ({ error }) => failures.push(`beat: ${error}`));
    worker.on("worker:error", ({ error, during }) => failures.push(`${during}: ${error.message}`));
    const client = newClient();
    const locker = await env.pool.connect();
    await worker.start();
    try {
      const started = new Promise<void>((resolve) => worker.once("task:started", () => resolve()));
      const first = await client.createTask("nap", [1000]);
      await started;
      // The tasks table locked for 12 s: the worker's one connection waits on it (its next beat, or a claim) and
      // every other statement of the worker waits for that connection.
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE "${env.schema}".tasks IN ACCESS EXCLUSIVE MODE`);
      await new Promise((r) => setTimeout(r, 12_000));
      await locker.query("COMMIT");
      const rest = await client.createTasks(Array.from({ length: 20 }, () => ({ name: "nap", args: [10] })));
      await allFinished(
        [first, ...rest].map((t) => t.id),
        30_000,
      );
      const done = await statuses([first, ...rest].map((t) => t.id));
      expect([...done.values()].filter((t) => t.status !== "COMPLETED")).toEqual([]);
      expect(failures).toEqual([]);
    } finally {
      await locker.query("ROLLBACK").catch(() => {});
      locker.release();
      await worker.stop();
      await client.close();
    }
  }, 60_000);
});

describe("maxConnections", () => {
  const base = { databaseUrl: "postgres://127.0.0.1/none", redisUrl: null, tasks: { noop: () => null }, logger: quiet };

  it("is an integer between 1 and 1000", () => {
    for (const bad of [0, -1, 1.5, 1001, "2", Number.NaN]) {
      expect(() => new Worker({ ...base, maxConnections: bad as number }), String(bad)).toThrow(InvalidOptionError);
    }
    try {
      new Worker({ ...base, maxConnections: 0 });
    } catch (err) {
      expect((err as InvalidOptionError).option).toBe("maxConnections");
    }
  });

  it("with poolSize, must agree with it: both are named when they do not", () => {
    expect(() => new Worker({ ...base, maxConnections: 5, poolSize: 3 })).not.toThrow();
    expect(() => new Worker({ ...base, maxConnections: 2, poolSize: 1 })).not.toThrow();
    expect(() => new Worker({ ...base, maxConnections: 1, poolSize: 1 })).not.toThrow();
    // poolSize alone keeps its own bound (1000), the two connections on top of it included.
    expect(() => new Worker({ ...base, poolSize: 1000 })).not.toThrow();
    for (const [maxConnections, poolSize] of [
      [5, 4],
      [1, 2],
      [6, 1],
    ] as const) {
      let error: unknown;
      try {
        new Worker({ ...base, maxConnections, poolSize });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect((error as Error).message).toMatch(/poolSize.*maxConnections/);
    }
  });

  it("run-worker refuses a bad --max-connections, or one that --pool-size contradicts, in one line", async () => {
    const zero = await runCli(["run-worker", "--tasks", TASKS, "--max-connections", "0"], {
      DATABASE_URL: env.databaseUrl,
      SKIPLOCK_SCHEMA: env.schema,
    });
    expect(zero.code).not.toBe(0);
    expect(zero.stderr).toMatch(/--max-connections/);
    const both = await runCli(["run-worker", "--tasks", TASKS, "--max-connections", "4", "--pool-size", "4"], {
      DATABASE_URL: env.databaseUrl,
      SKIPLOCK_SCHEMA: env.schema,
    });
    expect(both.code).not.toBe(0);
    expect(both.stderr).toMatch(/--pool-size.*--max-connections/);
  });
});

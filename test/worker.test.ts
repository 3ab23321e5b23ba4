import { describe, expect, it } from "vitest";
import {
  InvalidNameError,
  InvalidOptionError,
  Worker,
  defineTask,
  taskContext,
  type WorkerOptions,
} from "../src/index.js";
import { DATABASE_URL, quiet, waitFor } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";
import { ON_EMBEDDED, serverOnly } from "./embedded-place.js";

/** Every test leaves the queue empty so the next one starts clean. */
const env = workerFixture({
  label: "worker",
  workerDefaults: { retryBackoff: { base: 0.05, max: 0.2 } },
  deleteTasksAfterEach: true,
  finishTimeout: 15,
});
const { startWorker, finished } = env;

describe("Worker", () => {
  it("runs a task and records result, times and duration", async () => {
    await startWorker({ tasks: { multiply: (a: number, b: number) => a * b } });
    const done = await finished(await env.client.createTask("multiply", [6, 7]));
    expect(done.status).toBe("COMPLETED");
    expect(done.result).toBe(42);
    expect(done.error).toBeNull();
    expect(done.startedAt).toBeInstanceOf(Date);
    expect(done.finishedAt!.getTime()).toBeGreaterThanOrEqual(done.startedAt!.getTime());
    expect(done.duration).toBeGreaterThanOrEqual(0);
    expect(done.attempt).toBe(1);
  });

  it("retries a task that fails once, then completes it (retryCount 1)", async () => {
    await startWorker({
      maxRetries: 1,
      tasks: {
        flaky: () => {
          if (taskContext().attempt === 1) throw new Error("first attempt fails");
          return "ok";
        },
      },
    });
    const done = await finished(await env.client.createTask("flaky"));
    expect(done).toMatchObject({ status: "COMPLETED", result: "ok", retryCount: 1, maxRetries: 1, attempt: 2 });
  });

  it("fails a task that always fails after its one retry, keeping message and stack", async () => {
    let runs = 0;
    await startWorker({
      maxRetries: 1,
      tasks: {
        alwaysFails: () => {
          runs++;
          throw new Error("always fails");
        },
      },
    });
    const done = await finished(await env.client.createTask("alwaysFails"));
    expect(done).toMatchObject({ status: "FAILED", retryCount: 1, attempt: 2 });
    expect(done.error).toMatch(/^Error: always fails\n\s+at /);
    expect(runs).toBe(2);
  });

  it("lets a task's own maxRetries override the worker's default", async () => {
    let runs = 0;
    await startWorker({ maxRetries: 5, tasks: { fails: () => Promise.reject(new Error(`run ${++runs}`)) } });
    const done = await finished(await env.client.createTask("fails", [], { maxRetries: 0 }));
    expect(done).toMatchObject({ status: "FAILED", retryCount: 0, error: expect.stringMatching(/run 1/) });
    expect(runs).toBe(1);
  });

  it("never runs more than `concurrency` tasks at once, and uses all of them", async () => {
    let active = 0;
    let peak = 0;
    await startWorker({
      concurrency: 3,
      tasks: {
        work: async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setTimeout(r, 20));
          active--;
        },
      },
    });
    const tasks = await env.client.createTasks(Array.from({ length: 30 }, () => ({ name: "work" })));
    for (const t of tasks) expect((await finished(t)).status).toBe("COMPLETED");
    expect(peak).toBe(3);
  });

  it("claims higher priority first, then earlier runAt, then older", async () => {
    const order: string[] = [];
    const past = (s: number) => new Date(Date.now() - s * 1000);
    const tasks = await env.client.createTasks([
      { name: "log", args: ["low"], priority: 0, runAt: past(50) },
      { name: "log", args: ["high-late"], priority: 10, runAt: past(10) },
      { name: "log", args: ["high-early"], priority: 10, runAt: past(20) },
      { name: "log", args: ["mid"], priority: 5, runAt: past(5) },
      { name: "log", args: ["low-late"], priority: 0, runAt: past(1) },
    ]);
    await startWorker({ concurrency: 1, tasks: { log: (s: string) => void order.push(s) } });
    for (const t of tasks) await finished(t);
    expect(order).toEqual(["high-early", "high-late", "mid", "low", "low-late"]);
  });

  it("does not run a task before its runAt", async () => {
    await startWorker({ tasks: { noop: () => null }, pollInterval: 0.05 });
    const due = new Date(Date.now() + 600);
    const task = await env.client.createTask("noop", [], { runAt: due });
    const done = await finished(task);
    expect(done.startedAt!.getTime()).toBeGreaterThanOrEqual(due.getTime() - 5);
  });

  it("fails a task at its timeout and fires its AbortSignal", async () => {
    let reason: unknown;
    await startWorker({
      tasks: {
        waits: () =>
          new Promise((_, reject) => {
            const { signal } = taskContext();
            signal.addEventListener("abort", () => {
              reason = signal.reason;
              reject(signal.reason);
            });
          }),
      },
    });
    const done = await finished(await env.client.createTask("waits", [], { timeout: 0.3 }));
    expect(done.status).toBe("FAILED");
    expect(done.error).toMatch(/TaskTimeoutError: task timed out after 0.3 s/);
    expect((reason as Error).name).toBe("TaskTimeoutError");
  });

  it("fails a never-settling task at its timeout and keeps serving", async () => {
    await startWorker({ concurrency: 1, tasks: { hang: () => new Promise(() => {}), ok: () => "ok" } });
    const hung = await env.client.createTask("hang", [], { timeout: 0.2 });
    const next = await env.client.createTask("ok");
    expect((await finished(hung)).error).toMatch(/timed out/);
    expect((await finished(next)).result).toBe("ok");
  });

  it("fails an unknown task name without retrying and goes on", async () => {
    await startWorker({ maxRetries: 3, tasks: { ok: () => "ok" } });
    const unknown = await env.client.createTask("no.such.task", [1]);
    const next = await env.client.createTask("ok");
    const done = await finished(unknown);
    expect(done).toMatchObject({ status: "FAILED", retryCount: 0 });
    expect(done.error).toMatch(/UnknownTaskError: unknown task "no.such.task"/);
    expect((await finished(next)).status).toBe("COMPLETED");
  });

  it("records readable errors for non-Error throws and non-JSON results", async () => {
    await startWorker({
      tasks: {
        throwsObject: () => {
          throw { code: 42, why: "plain object" };
        },
        throwsString: () => Promise.reject("just a string"),
        returnsBigInt: () => 10n,
        returnsFunction: () => () => 1,
        returnsUndefined: () => undefined,
      },
    });
    const [obj, str, big, fn, undef] = await env.client.createTasks([
      { name: "throwsObject" },
      { name: "throwsString" },
      { name: "returnsBigInt" },
      { name: "returnsFunction" },
      { name: "returnsUndefined" },
    ]);
    expect((await finished(obj!)).error).toMatch(
      /handler threw a non-Error value: \{ code: 42, why: 'plain object' \}/,
    );
    expect((await finished(str!)).error).toMatch(/handler threw a non-Error value: 'just a string'/);
    expect((await finished(big!)).error).toMatch(/handler returned a value JSON cannot carry: .*BigInt/);
    expect((await finished(fn!)).error).toMatch(/handler returned a value JSON cannot carry: .*function/);
    expect(await finished(undef!)).toMatchObject({ status: "COMPLETED", result: null });
  });

  it("claims only from its queues", async () => {
    await startWorker({ queues: ["a", "b"], tasks: { q: () => taskContext().queue } });
    const [a, b, c] = await env.client.createTasks([
      { name: "q", queue: "a" },
      { name: "q", queue: "b" },
      { name: "q", queue: "c" },
    ]);
    expect((await finished(a!)).result).toBe("a");
    expect((await finished(b!)).result).toBe("b");
    expect(await env.client.waitForCompletion(c!.id, { timeout: 0.5 })).toBeNull();
  });

  it("runs tasks made with defineTask under their own name", async () => {
    const add = defineTask("math.add", (a: number, b: number) => a + b, { priority: 3 });
    await startWorker({ tasks: [add] });
    const task = await add.using({ client: env.client }).enqueue(2, 5);
    expect(task.priority).toBe(3);
    expect((await finished(task)).result).toBe(7);
  });

  it("refuses bad options with typed errors", () => {
    const base = { databaseUrl: DATABASE_URL, schema: "x", tasks: { a: () => 1 } };
    expect(() => new Worker({ ...base, concurrency: 0 })).toThrow(InvalidOptionError);
    expect(() => new Worker({ ...base, queues: ["bad queue"] })).toThrow(InvalidNameError);
    expect(() => new Worker({ ...base, heartbeatInterval: 10, staleAfter: 15 })).toThrow(/twice heartbeatInterval/);
    expect(() => new Worker({ ...base, tasks: { "bad name": () => 1 } })).toThrow(InvalidNameError);
    expect(() => new Worker({ ...base, tasks: { a: 5 as never } })).toThrow(InvalidOptionError);
  });

  it("refuses to start on a schema that was never migrated", async () => {
    const w = new Worker({
      databaseUrl: DATABASE_URL,
      schema: "never_migrated_here",
      tasks: { a: () => 1 },
      logger: quiet,
    });
    await expect(w.start()).rejects.toThrow(/run `skiplock migrate`/);
  });

  serverOnly(ON_EMBEDDED.connections)(
    "is woken by Redis: an idle worker with a long poll interval starts a new task at once",
    async () => {
      const w = await startWorker({ pollInterval: 30, tasks: { noop: () => "woke" } });
      // The first claim happens at start: wait until it has come back empty and the worker sits idle, then enqueue.
      await waitFor("the worker's first claim to come back", async () => {
        const { rows } = await env.pool.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE application_name = $1 AND state = 'idle' AND query LIKE '%picked%'`,
          [`skiplock worker ${w.id}`],
        );
        return rows[0].n === 1;
      });
      const done = await finished(await env.client.createTask("noop"), 5);
      expect(done.result).toBe("woke");
      expect(done.startedAt!.getTime() - done.createdAt.getTime()).toBeLessThan(5000);
    },
  );

  it("warns once at start when autovacuum will not clean the tasks table", async () => {
    const autovacuumWarnings = async () => {
      const warnings: string[] = [];
      const w = await startWorker({
        logger: { ...quiet, warn: (m: string) => void warnings.push(m) },
        tasks: { noop() {} },
      });
      await w.stop();
      return warnings.filter((m) => m.includes("autovacuum")).length;
    };
    const tasks = `"${env.schema}".tasks_live`;
    await env.pool.query(`ALTER TABLE ${tasks} SET (autovacuum_enabled = false)`);
    try {
      expect(await autovacuumWarnings()).toBe(1);
    } finally {
      await env.pool.query(`ALTER TABLE ${tasks} RESET (autovacuum_enabled)`);
    }
    const server = (await env.pool.query("SHOW autovacuum")).rows[0].autovacuum;
    expect(await autovacuumWarnings()).toBe(server === "on" ? 0 : 1);
  });

  serverOnly(ON_EMBEDDED.throughput)(
    "keeps heartbeating long tasks claimed after thousands of short ones (the heartbeat list is resent, not lost)",
    async () => {
      // A task left out of the heartbeat thread's list would be swept after 1.2 s and, with no retries, FAILED.
      await startWorker({
        concurrency: 8,
        heartbeatInterval: 0.2,
        staleAfter: 1.2,
        sweepInterval: 0.2,
        tasks: { noop() {}, slow: () => new Promise((resolve) => setTimeout(() => resolve("slept"), 2500)) },
      });
      for (let i = 0; i < 9; i++) {
        await env.client.createTasks(Array.from({ length: 1000 }, () => ({ name: "noop", priority: 10 })));
      }
      const slow = await env.client.createTasks(Array.from({ length: 8 }, () => ({ name: "slow" })));
      const done = await Promise.all(slow.map((t) => finished(t, 30)));
      expect(done.map((t) => [t.status, t.attempt, t.result])).toEqual(slow.map(() => ["COMPLETED", 1, "slept"]));
    },
  );

  serverOnly(ON_EMBEDDED.connections)(
    "does not run a task twice when its claim is undone and the worker claims it again",
    async () => {
      let runs = 0;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const warnings: string[] = [];
      const w = await startWorker({
        concurrency: 2,
        pollInterval: 0.05,
        logger: { ...quiet, warn: (m: string) => void warnings.push(m) },
        tasks: {
          slow: async () => {
            runs++;
            await gate;
            return "first";
          },
        },
      });
      const tasks = `"${env.schema}".tasks`;
      const task = await env.client.createTask("slow");
      await waitFor("the first run", () => runs === 1);
      // What a crash of the Postgres server leaves when it loses the claim's commit: the task PENDING with its former
      // attempt, while the worker runs it; and the crash takes the worker's claim connection with it. One
      // transaction, so that the worker can only see the task again on a new connection, as after a crash.
      const admin = await env.pool.connect();
      try {
        await admin.query("BEGIN");
        await admin.query(
          `UPDATE ${tasks} SET status = 'PENDING', attempt = attempt - 1, worker_id = NULL, started_at = NULL,
                heartbeat_at = NULL WHERE id = $1`,
          [task.id],
        );
        const killed = await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'WITH picked%'`,
          [`skiplock worker ${w.id}`],
        );
        expect(killed.rowCount).toBe(1);
        await admin.query("COMMIT");
      } finally {
        admin.release();
      }
      await waitFor("the task claimed again by the same worker, under the same attempt", async () => {
        const { rows } = await env.pool.query(`SELECT status, attempt, worker_id FROM ${tasks} WHERE id = $1`, [
          task.id,
        ]);
        return rows[0].status === "PROGRESS" && rows[0].attempt === 1 && rows[0].worker_id === w.id;
      });
      await waitFor("the worker to notice", () => warnings.some((m) => m.includes("already running")));
      expect(runs).toBe(1);
      release();
      expect(await finished(task)).toMatchObject({ status: "COMPLETED", attempt: 1, result: "first" });
      expect(runs).toBe(1);
    },
  );
});

describe("Worker wake-ups and queues", () => {
  it("starts every delayed task on time, however many are pending, without waiting for the next poll", async () => {
    await startWorker({ tasks: { multiply: (a: number, b: number) => a * b }, pollInterval: 30 });
    // Ten due times 0.3 s apart, from 1 s on: one wake-up timer for the earliest alone would leave nine to the poll.
    const tasks = await Promise.all(
      Array.from({ length: 10 }, (_, i) => env.client.createTask("multiply", [i, 2], { delay: 1 + i * 0.3 })),
    );
    for (const t of tasks) {
      const done = await finished(t, 20);
      // On time: well within the 30 s poll interval (a slow machine may add some hundreds of ms).
      expect(done.startedAt!.getTime() - done.runAt.getTime()).toBeLessThan(2000);
    }
  });

  it("claims by default the queue every registered definition names, beside 'default'", async () => {
    const send = defineTask("email.send", (to: string) => ({ sent: to }), { queue: "email" });
    const w = await startWorker({ tasks: [send] });
    expect(w.queues.sort()).toEqual(["default", "email"]);
    const done = await finished(await send.using({ client: env.client }).enqueue("a@example.com"));
    expect(done).toMatchObject({ status: "COMPLETED", queue: "email", result: { sent: "a@example.com" } });
  });

  it("claims only the queues it is given", async () => {
    const send = defineTask("email.send", (to: string) => ({ sent: to }), { queue: "email" });
    const w = await startWorker({ tasks: [send], queues: ["default"] });
    expect(w.queues).toEqual(["default"]);
  });
});

describe("Worker options", () => {
  it("refuses an unknown option key, naming the one it was likely meant to be", () => {
    expect(
      () => new Worker({ databaseUrl: DATABASE_URL, schema: "x", tasks: { a: () => 1 }, retries: 1 } as WorkerOptions),
    ).toThrow(/retries.*maxRetries/s);
  });
});

// taskContext().progress and setMeta: checked values, the per-task throttle that never loses the last value, writes
// under the lease, and progress heard by client.onProgress and waitForCompletion's onProgress with and without Redis.
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { NullNotifier } from "../src/notify/index.js";
import { SkiplockClient, SkiplockError, taskContext, type TaskContext, type TaskProgress } from "../src/index.js";
import type { Queryable } from "../src/db/statements.js";
import type { ClaimedRow } from "../src/sql/claim.js";
import { writeReports } from "../src/sql/progress.js";
import type { WorkerEvents } from "../src/worker/events.js";
import { ReportWriter } from "../src/worker/reports.js";
import { insertCrashedTasks, quiet, taskRows, waitFor } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";

const MODULE = fileURLToPath(new URL("./fixtures/isolated.js", import.meta.url));
const env = workerFixture({ label: "progress", deleteTasksAfterEach: true });
const { startWorker, finished } = env;
const tasks = () => `"${env.schema}".tasks`;

/** A promise and its resolve. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Clients of the test's own (a slow poll, or no Redis), closed after the file. */
const clients: SkiplockClient[] = [];
function client(options: { redis: boolean; pollInterval: number }): SkiplockClient {
  const c = new SkiplockClient({
    databaseUrl: env.databaseUrl,
    redisUrl: options.redis ? env.redisUrl : null,
    schema: env.schema,
    pollInterval: options.pollInterval,
    logger: quiet,
  });
  clients.push(c);
  return c;
}
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

describe("taskContext().progress", () => {
  it("writes about once a second however often it is called, and keeps the last value before the outcome", async () => {
    const writes: TaskProgress[] = [];
    let elapsed = 0;
    const worker = await startWorker({
      tasks: {
        chatty: async () => {
          const ctx = taskContext();
          const t0 = Date.now();
          for (let i = 1; i <= 300; i++) {
            await ctx.progress(i / 300, `step ${i}`);
            await new Promise((r) => setTimeout(r, 5));
          }
          elapsed = (Date.now() - t0) / 1000;
          return "ok";
        },
      },
    });
    worker.on("task:progress", ({ progress }) => writes.push(progress));
    const task = await env.client.createTask("chatty");
    const done = await finished(task);
    expect(done.status).toBe("COMPLETED");
    expect(done.progress).toMatchObject({ fraction: 1, message: "step 300" });
    expect(done.progress!.at).toBeInstanceOf(Date);
    expect(done.progress!.at.getTime()).toBeLessThanOrEqual(done.finishedAt!.getTime());
    // One write at the first call, then at most one per second of calls, and the last one before the outcome.
    expect(writes.length).toBeGreaterThanOrEqual(2);
    expect(writes.length).toBeLessThanOrEqual(Math.ceil(elapsed) + 2);
    expect(writes.at(-1)).toMatchObject({ fraction: 1, message: "step 300" });
    expect(writes[0]).toMatchObject({ fraction: 1 / 300, message: "step 1" });
  });

  it("refuses bad values with a typed error thrown to the handler, and writes nothing for them", async () => {
    await startWorker({
      tasks: {
        bad: () => {
          const ctx = taskContext();
          const codes: string[] = [];
          for (const call of [
            () => ctx.progress(1.5),
            () => ctx.progress(-0.1),
            () => ctx.progress(Number.NaN),
            () => ctx.progress("0.5" as unknown as number),
            () => ctx.progress(0.5, 42 as unknown as string),
            () => ctx.progress(0.5, "\u0000"),
            () => ctx.setMeta([1] as unknown as Record<string, unknown>),
            () => ctx.setMeta({ f: () => 1 }),
            () => ctx.setMeta({ big: "x".repeat(70_000) }),
          ]) {
            try {
              void call();
              codes.push("accepted");
            } catch (err) {
              codes.push(err instanceof SkiplockError ? err.code : String(err));
            }
          }
          return codes;
        },
      },
    });
    const done = await finished(await env.client.createTask("bad"));
    expect(done.result).toEqual([
      "INVALID_OPTION",
      "INVALID_OPTION",
      "INVALID_OPTION",
      "INVALID_OPTION",
      "INVALID_OPTION",
      "NOT_JSON",
      "INVALID_OPTION",
      "NOT_JSON",
      "PAYLOAD_TOO_LARGE",
    ]);
    expect(done.progress).toBeNull();
    expect(done.meta).toEqual({});
  });

  it("a report after the outcome, or for an attempt that moved on, changes nothing", async () => {
    let saved: TaskContext | null = null;
    await startWorker({
      tasks: {
        keepsContext: async () => {
          saved = taskContext();
          await saved.progress(0.3, "before");
          return "ok";
        },
      },
    });
    const done = await finished(await env.client.createTask("keepsContext"));
    expect(done.progress).toMatchObject({ fraction: 0.3, message: "before" });
    // The handler's context, used after its outcome: resolves, writes nothing.
    await saved!.progress(0.9, "after");
    await saved!.setMeta({ late: true });
    const [id] = [done.id];
    // The lease itself refuses it: the same attempt and worker, but the task is finished.
    const stale = { id, attempt: 1, progressJson: '{"fraction":0.9,"message":"after"}', metaJson: '{"late":true}' };
    expect((await writeReports(env.pool, tasks(), done.workerId!, [stale])).size).toBe(0);
    // A running task whose attempt moved on (2 now), and one held by another worker.
    const [running] = await insertCrashedTasks(env.pool, env.schema, 1, { workerId: "me", attempt: 2 });
    expect((await writeReports(env.pool, tasks(), "me", [{ ...stale, id: running! }])).size).toBe(0);
    expect((await writeReports(env.pool, tasks(), "other", [{ ...stale, id: running!, attempt: 2 }])).size).toBe(0);
    const rows = await taskRows(env.pool, env.schema, [id, running!]);
    expect(rows.get(id)!.progress).toMatchObject({ fraction: 0.3, message: "before" });
    expect(rows.get(id)!.meta).toEqual({});
    expect(rows.get(running!)!.progress).toBeNull();
    // The holder of the lease can.
    const written = await writeReports(env.pool, tasks(), "me", [{ ...stale, id: running!, attempt: 2 }]);
    expect(written.get(running!)).toMatchObject({ fraction: 0.9, message: "after" });
  });
});

describe("the report writer", () => {
  it("never rejects when a write fails: it reports the error and writes the value a second later", async () => {
    const [id] = await insertCrashedTasks(env.pool, env.schema, 1, { workerId: "me", heartbeatAge: 0 });
    let failures = 1;
    const q: Queryable = {
      query: (config) => {
        if (failures-- > 0) return Promise.reject(Object.assign(new Error("connection lost"), { code: "08006" }));
        return env.pool.query(config);
      },
    };
    const errors: WorkerEvents["worker:error"][0][] = [];
    const writer = new ReportWriter({
      q,
      tasks: tasks(),
      workerId: "me",
      maxRetries: 0,
      notifier: new NullNotifier(),
      logger: quiet,
      signal: (name, ...args) => {
        if (name === "worker:error") errors.push(args[0] as WorkerEvents["worker:error"][0]);
      },
    });
    const row = {
      id: id!,
      attempt: 1,
      name: "recorded",
      queue: "default",
      args: [],
      retry_count: 0,
    } as unknown as ClaimedRow;
    await expect(writer.report(row, '{"fraction":0.4,"message":null}', { k: 1 })).resolves.toBeUndefined();
    expect(errors.map((e) => e.during)).toEqual(["progress write"]);
    await waitFor("the retried write", async () => (await taskRows(env.pool, env.schema, [id!])).get(id!)!.progress);
    const stored = (await taskRows(env.pool, env.schema, [id!])).get(id!)!;
    expect(stored.progress).toMatchObject({ fraction: 0.4, message: null });
    expect(stored.meta).toEqual({ k: 1 });
    await writer.stop();
  });
});

describe("taskContext().setMeta", () => {
  it("merges top-level keys into meta, coalescing calls made within a second, and keeps the last ones", async () => {
    await startWorker({
      tasks: {
        tags: async () => {
          // Destructured, as handlers do with signal.
          const { setMeta, schedule } = taskContext();
          await setMeta({ a: 1, b: { deep: true } });
          await setMeta({ b: 2, c: "x" });
          await setMeta({ d: null });
          return schedule ?? null;
        },
      },
    });
    const done = await finished(await env.client.createTask("tags"));
    expect(done.meta).toEqual({ a: 1, b: 2, c: "x", d: null });
    expect(done.result).toBeNull(); // no schedule enqueued it
  });
});

describe("thread isolation", () => {
  it("reports progress and meta from the task's thread; a bad value is refused with the typed error's name and code", async () => {
    await startWorker({ tasksModule: MODULE, isolation: "thread" });
    const done = await finished(await env.client.createTask("reportsProgress"));
    expect(done.status).toBe("COMPLETED");
    expect(done.result).toEqual({ name: "InvalidOptionError", code: "INVALID_OPTION" });
    expect(done.progress).toMatchObject({ fraction: 1, message: "done" });
    expect(done.meta).toEqual({ thread: true });
  });
});

describe("hearing progress", () => {
  /** A handler that reports `first`, waits for the test, reports `second`, waits again, then returns. */
  function stepped() {
    const gates = [deferred(), deferred()];
    const handler = async () => {
      const ctx = taskContext();
      await ctx.progress(0.1, "first");
      await gates[0]!.promise;
      await ctx.progress(0.6, "second");
      await gates[1]!.promise;
      return "ok";
    };
    return { gates, handler };
  }

  it("client.onProgress hears a change through Redis, long before its next read of the row", async () => {
    const { gates, handler } = stepped();
    await startWorker({ tasks: { stepped: handler } });
    // Polls every 60 s: within this test only Redis can bring it the second value.
    const slow = client({ redis: true, pollInterval: 60 });
    const task = await slow.createTask("stepped");
    await waitFor("the first report", async () => (await slow.getTask(task.id))?.progress?.fraction === 0.1);
    const heard: TaskProgress[] = [];
    const off = slow.onProgress(task.id, (p) => heard.push(p));
    await waitFor("the first value, from the first read", () => heard.length === 1);
    gates[0]!.resolve();
    await waitFor("the second value, through Redis", () => heard.length === 2);
    expect(heard.map((p) => [p.fraction, p.message])).toEqual([
      [0.1, "first"],
      [0.6, "second"],
    ]);
    expect(heard[1]!.at.getTime()).toBeGreaterThan(heard[0]!.at.getTime());
    off();
    gates[1]!.resolve();
    expect((await finished(task)).status).toBe("COMPLETED");
    expect(heard).toHaveLength(2); // unsubscribed
  });

  it("without Redis, client.onProgress and waitForCompletion's onProgress hear changes at their reads", async () => {
    const { gates, handler } = stepped();
    await startWorker({ redisUrl: null, tasks: { stepped: handler } });
    const polling = client({ redis: false, pollInterval: 0.1 });
    const task = await polling.createTask("stepped");
    const heard: TaskProgress[] = [];
    const waited: TaskProgress[] = [];
    polling.onProgress(task.id, (p) => heard.push(p));
    const done = polling.waitForCompletion(task.id, { timeout: 20, onProgress: (p) => waited.push(p) });
    await waitFor("the first value", () => heard.length === 1 && waited.length === 1);
    gates[0]!.resolve();
    await waitFor("the second value", () => heard.length === 2 && waited.length === 2);
    gates[1]!.resolve();
    expect((await done)?.status).toBe("COMPLETED");
    for (const list of [heard, waited]) expect(list.map((p) => p.message)).toEqual(["first", "second"]);
  });

  it("waitForCompletion's onProgress hears every recorded change before it resolves, and throwing listeners harm nothing", async () => {
    const worker = await startWorker({
      tasks: {
        steps: async () => {
          const ctx = taskContext();
          for (const f of [0.25, 0.5, 1]) {
            await ctx.progress(f);
            // Past the throttle, so each value is its own write.
            await new Promise((r) => setTimeout(r, 1100));
          }
          return "ok";
        },
      },
    });
    const recorded: number[] = [];
    worker.on("task:progress", ({ progress }) => recorded.push(progress.fraction));
    worker.on("task:progress", () => {
      throw new Error("a worker listener's own bug");
    });
    const task = await env.client.createTask("steps");
    const heard: number[] = [];
    const done = await env.client.waitForCompletion(task.id, {
      timeout: 20,
      onProgress: (p) => {
        heard.push(p.fraction);
        throw new Error("a listener's own bug");
      },
    });
    expect(done?.status).toBe("COMPLETED");
    expect(recorded).toEqual([0.25, 0.5, 1]);
    expect(heard).toEqual([0.25, 0.5, 1]);
  });
});

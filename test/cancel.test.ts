// cancelTask on pending and running tasks: the signal's reason, the outcomes a handler can lead to, the grace
// period, thread isolation, the race with completion, a cancel heard without Redis, and the sweep.
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { TaskCancelledError, taskContext, type Task, type Worker } from "../src/index.js";
import { cancelTasks } from "../src/sql/cancel.js";
import { sweepStaleTasks } from "../src/sql/sweep.js";
import { insertCrashedTasks, taskRows, waitFor, waitForCpuIdle, WorkerProcs } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";
import { ON_EMBEDDED, serverOnly } from "./embedded-place.js";

const MODULE = fileURLToPath(new URL("./fixtures/isolated.js", import.meta.url));
const env = workerFixture({
  label: "cancel",
  workerDefaults: { heartbeatInterval: 0.2, staleAfter: 2, pollInterval: 0.2 },
  deleteTasksAfterEach: true,
});
const { startWorker, finished } = env;
const tasks = () => `"${env.schema}".tasks`;

/** A promise and its resolve, for handlers that tell the test they started. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves once the signal fires, with its reason. */
function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    else signal.addEventListener("abort", () => resolve(signal.reason), { once: true });
  });
}

function cancelledEvents(worker: Worker): string[] {
  const ids: string[] = [];
  worker.on("task:cancelled", ({ task }) => ids.push(task.id));
  return ids;
}

describe("cancelTask", () => {
  it("cancels a PENDING task at once; it never runs", async () => {
    let runs = 0;
    await startWorker({ queues: ["other"], tasks: { never: () => runs++ } });
    const task = await env.client.createTask("never", [], { queue: "elsewhere" });
    const waiting = env.client.waitForCompletion(task.id, { timeout: 10 });
    const cancelled = await env.client.cancelTask(task.id);
    expect(cancelled).toMatchObject({ status: "CANCELLED", cancelRequested: false });
    expect((await waiting)?.status).toBe("CANCELLED");
    expect(runs).toBe(0);
  });

  it("fires the running handler's signal with TaskCancelledError; a handler that heeds it ends CANCELLED", async () => {
    const started = deferred();
    let reason: unknown;
    const worker = await startWorker({
      tasks: {
        heeds: async () => {
          const { signal } = taskContext();
          started.resolve();
          reason = await aborted(signal);
          throw reason;
        },
      },
    });
    const events = cancelledEvents(worker);
    const task = await env.client.createTask("heeds");
    await started.promise;
    const asked = await env.client.cancelTask(task.id);
    // Returned as it stands: still running, its cancel recorded.
    expect(asked).toMatchObject({ status: "PROGRESS", cancelRequested: true });
    const done = await finished(task);
    expect(done).toMatchObject({ status: "CANCELLED", result: null, retryCount: 0, attempt: 1 });
    expect(done.error).toMatch(/^TaskCancelledError: /);
    expect(reason).toBeInstanceOf(TaskCancelledError);
    expect((reason as TaskCancelledError).code).toBe("TASK_CANCELLED");
    await waitFor("task:cancelled", () => events.includes(task.id));
    // Final: cancelling again changes nothing.
    expect((await env.client.cancelTask(task.id)).status).toBe("CANCELLED");
  });

  it("never retries a cancelled task, whatever its handler fails with", async () => {
    const started = deferred();
    let runs = 0;
    await startWorker({
      maxRetries: 3,
      tasks: {
        failsOwnWay: async () => {
          runs++;
          started.resolve();
          await aborted(taskContext().signal);
          throw new Error("cleanup failed");
        },
      },
    });
    const task = await env.client.createTask("failsOwnWay");
    await started.promise;
    await env.client.cancelTask(task.id);
    expect(await finished(task)).toMatchObject({ status: "CANCELLED", retryCount: 0 });
    expect(runs).toBe(1);
  });

  it("ends COMPLETED when the handler returns successfully anyway: the work was done", async () => {
    const started = deferred();
    await startWorker({
      tasks: {
        finishesAnyway: async () => {
          started.resolve();
          await aborted(taskContext().signal);
          return "done anyway";
        },
      },
    });
    const task = await env.client.createTask("finishesAnyway");
    await started.promise;
    await env.client.cancelTask(task.id);
    expect(await finished(task)).toMatchObject({ status: "COMPLETED", result: "done anyway", cancelRequested: true });
  });

  it("abandons a handler that ignores the signal after cancelGrace and reuses its slot", async () => {
    const started = deferred();
    await startWorker({
      concurrency: 1,
      cancelGrace: 0.3,
      tasks: {
        ignores: () => {
          started.resolve();
          return new Promise(() => {});
        },
        next: () => "ran",
      },
    });
    const task = await env.client.createTask("ignores");
    await started.promise;
    const after = await env.client.createTask("next");
    await env.client.cancelTask(task.id);
    const done = await finished(task);
    expect(done).toMatchObject({ status: "CANCELLED", result: null });
    expect(done.error).toMatch(/TaskCancelledError: .*abandoned after ignoring its signal for 0.3 s/);
    // The one slot was freed: the next task ran.
    expect(await finished(after)).toMatchObject({ status: "COMPLETED", result: "ran" });
  });

  it("in thread isolation, terminates the thread of a handler that never yields", async () => {
    await startWorker({ tasksModule: MODULE, isolation: "thread", concurrency: 1, cancelGrace: 0.3 });
    const loop = await env.client.createTask("loopForever", [], { timeout: 600 });
    await waitFor("the loop to run", async () => (await env.client.getTask(loop.id))?.status === "PROGRESS");
    const next = await env.client.createTask("echo", [5]);
    expect((await env.client.cancelTask(loop.id)).cancelRequested).toBe(true);
    const done = await finished(loop);
    expect(done.status).toBe("CANCELLED");
    expect(done.error).toMatch(/abandoned .* \(its thread was terminated\)/);
    expect(await finished(next)).toMatchObject({ status: "COMPLETED", result: { x: 5, attempt: 1 } });
    // The looping thread is gone: this process no longer burns a core.
    await waitForCpuIdle(process.pid, "the looping thread to be terminated", 0.5);
  });

  it("in thread isolation, a handler that heeds the signal ends CANCELLED with its thread kept", async () => {
    await startWorker({ tasksModule: MODULE, isolation: "thread", concurrency: 1 });
    const task = await env.client.createTask("waitsForAbort");
    await waitFor("the handler to run", async () => (await env.client.getTask(task.id))?.status === "PROGRESS");
    await env.client.cancelTask(task.id);
    const done = await finished(task);
    expect(done).toMatchObject({ status: "CANCELLED", result: null });
    // The handler saw the reason's name and code even across the thread boundary: it rethrew it unchanged.
    expect(done.error).toMatch(/^TaskCancelledError: /);
  });

  it("a cancel racing the task's completion: each task ends as its handler saw it, never CANCELLED with a result", async () => {
    const saw = new Map<string, "returned" | "aborted">();
    const runs = new Map<string, number>();
    await startWorker({
      concurrency: 8,
      tasks: {
        race: async (ms: number) => {
          const { id, signal } = taskContext();
          runs.set(id, (runs.get(id) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, ms));
          if (signal.aborted) {
            saw.set(id, "aborted");
            throw signal.reason;
          }
          saw.set(id, "returned");
          return ms;
        },
      },
    });
    const all = await env.client.createTasks(
      Array.from({ length: 120 }, (_, i) => ({ name: "race", args: [(i * 7) % 25] })),
    );
    // Cancels sent while the tasks run, some before, some as, some after they finish.
    await Promise.all(
      all.map(async (t, i) => {
        await new Promise((r) => setTimeout(r, (i * 13) % 60));
        await env.client.cancelTask(t.id);
      }),
    );
    const done: Task[] = [];
    for (const t of all) done.push(await finished(t));
    let completed = 0;
    let cancelled = 0;
    for (const d of done) {
      expect(runs.get(d.id) ?? 0).toBeLessThanOrEqual(1);
      if (d.status === "COMPLETED") {
        completed++;
        expect(saw.get(d.id)).toBe("returned");
        expect(d.result).toBe(d.args[0]);
      } else {
        cancelled++;
        expect(d.status).toBe("CANCELLED");
        expect(d.result).toBeNull();
        // Aborted while running, or cancelled before it ever started.
        expect(saw.get(d.id) ?? "never ran").not.toBe("returned");
      }
    }
    expect(completed + cancelled).toBe(all.length);
    const rows = await taskRows(env.pool, env.schema);
    expect([...rows.values()].filter((r) => r.status === "CANCELLED" && r.result !== null)).toEqual([]);
  });

  serverOnly(ON_EMBEDDED.redis)("without Redis, the worker hears the cancel at its next heartbeat", async () => {
    const started = deferred();
    const worker = await startWorker({
      redisUrl: null,
      tasks: {
        heeds: async () => {
          started.resolve();
          throw await aborted(taskContext().signal);
        },
      },
    });
    const events = cancelledEvents(worker);
    const beats: number[] = [];
    worker.on("beat", ({ rows }) => beats.push(rows));
    const task = await env.client.createTask("heeds");
    await started.promise;
    await env.client.cancelTask(task.id);
    // Polled: this worker publishes nothing, and the test's client trusts its Redis.
    await waitFor("the task to end", async () => (await env.client.getTask(task.id))?.status === "CANCELLED");
    expect(events).toEqual([task.id]);
    expect(beats.some((n) => n > 0)).toBe(true);
  });
});

describe("run-worker --cancel-grace", () => {
  const procs = new WorkerProcs(() => env.schema, ["--heartbeat-interval", "0.2", "--stale-after", "2"]);
  afterEach(() => procs.killAll());

  serverOnly(ON_EMBEDDED.processes)(
    "abandons a handler that ignores the signal after the grace given, and reports task:cancelled",
    async () => {
      const worker = await procs.start(["--cancel-grace", "0.5", "--ipc-task-events"]);
      const task = await env.client.createTask("hang");
      await waitFor(
        "the handler to run",
        async () =>
          (await env.pool.query(`SELECT 1 FROM "${env.schema}".ledger WHERE task_id = $1`, [task.id])).rowCount === 1,
      );
      await env.client.cancelTask(task.id);
      const done = await finished(task);
      expect(done.status).toBe("CANCELLED");
      expect(done.error).toMatch(/abandoned after ignoring its signal for 0.5 s/);
      const event = await worker.waitForEvent("task:cancelled", (d) => d.task.id === task.id);
      expect(event.data.task).toMatchObject({ name: "hang", attempt: 1 });
    },
  );
});

describe("a cancel requested before the worker heard it", () => {
  it("a handler that fails meanwhile is not retried: the task ends CANCELLED, its error kept", async () => {
    const started = deferred();
    const gate = deferred();
    let runs = 0;
    // No Redis and a slow heartbeat: the worker has not heard the request when the handler fails.
    await startWorker({
      redisUrl: null,
      heartbeatInterval: 5,
      staleAfter: 30,
      maxRetries: 3,
      tasks: {
        failsLater: async () => {
          runs++;
          started.resolve();
          await gate.promise;
          throw new Error("failed on its own");
        },
      },
    });
    const task = await env.client.createTask("failsLater");
    await started.promise;
    expect((await env.client.cancelTask(task.id)).cancelRequested).toBe(true);
    gate.resolve();
    const done = await waitFor("the task to end", async () => {
      const t = await env.client.getTask(task.id);
      return t?.status === "CANCELLED" || t?.status === "FAILED" || t?.status === "PENDING" ? t : null;
    });
    expect(done).toMatchObject({ status: "CANCELLED", retryCount: 0 });
    expect(done!.error).toMatch(/failed on its own/);
    expect(runs).toBe(1);
  });
});

describe("a cancel requested, then the worker stops before hearing it", () => {
  it("the hand-back ends the task CANCELLED: no other worker runs it again", async () => {
    const started = deferred();
    let runs = 0;
    // No Redis and a slow heartbeat: the worker has not heard the request when it stops.
    const first = await startWorker({
      redisUrl: null,
      heartbeatInterval: 5,
      staleAfter: 30,
      shutdownTimeout: 0.2,
      tasks: {
        waits: async () => {
          runs++;
          started.resolve();
          await new Promise(() => {}); // never settles: stop() hands it back
        },
      },
    });
    const task = await env.client.createTask("waits");
    await started.promise;
    expect((await env.client.cancelTask(task.id)).cancelRequested).toBe(true);
    await first.stop();
    expect(await env.client.getTask(task.id)).toMatchObject({ status: "CANCELLED" });
    await startWorker({ tasks: { waits: () => runs++ } });
    expect(await finished(task)).toMatchObject({ status: "CANCELLED" });
    expect(runs).toBe(1);
  });
});

describe("cancel under the lease", () => {
  it("writes CANCELLED only for the attempt and worker holding the lease, never over a finished task", async () => {
    const [running] = await insertCrashedTasks(env.pool, env.schema, 1, { workerId: "me", attempt: 2 });
    const [done] = await insertCrashedTasks(env.pool, env.schema, 1, { workerId: "me", status: "COMPLETED" });
    const c = { error: "TaskCancelledError: x", duration: 0.1 };
    expect(await cancelTasks(env.pool, tasks(), "me", [{ id: running!, attempt: 1, ...c }])).toEqual(new Set());
    expect(await cancelTasks(env.pool, tasks(), "other", [{ id: running!, attempt: 2, ...c }])).toEqual(new Set());
    expect(await cancelTasks(env.pool, tasks(), "me", [{ id: done!, attempt: 1, ...c }])).toEqual(new Set());
    const rows = await taskRows(env.pool, env.schema, [running!, done!]);
    expect(rows.get(running!)!.status).toBe("PROGRESS");
    expect(rows.get(done!)!.status).toBe("COMPLETED");
    expect(await cancelTasks(env.pool, tasks(), "me", [{ id: running!, attempt: 2, ...c }])).toEqual(
      new Set([running]),
    );
    expect((await taskRows(env.pool, env.schema, [running!])).get(running!)!.status).toBe("CANCELLED");
  });

  it("the sweep ends a lost task whose cancel was requested CANCELLED instead of queueing it again", async () => {
    const [asked, plain] = await insertCrashedTasks(env.pool, env.schema, 2, { maxRetries: 3 });
    await env.pool.query(`UPDATE ${tasks()} SET cancel_requested = true WHERE id = $1`, [asked]);
    const swept = await sweepStaleTasks(env.pool, tasks(), 2);
    expect(new Map(swept.map((s) => [s.id, s.status]))).toEqual(
      new Map([
        [asked, "CANCELLED"],
        [plain, "PENDING"],
      ]),
    );
    const rows = await taskRows(env.pool, env.schema, [asked!]);
    expect(rows.get(asked!)).toMatchObject({ status: "CANCELLED", result: null });
    expect(rows.get(asked!)!.finished_at).toBeInstanceOf(Date);
  });
});

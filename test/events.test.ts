import { afterEach, describe, expect, it } from "vitest";
import { defineTask, type RunningTask, type WorkerEventName } from "../src/index.js";
import { CRASHED_WORKER, insertCrashedTasks, taskRows, waitFor, WorkerProcs } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";
import { nextEvent, recordEvents } from "./worker-events.js";

const env = workerFixture({
  label: "events",
  workerDefaults: { retryBackoff: { base: 0.01, max: 0.02 } },
  deleteTasksAfterEach: true,
});
const { startWorker, finished } = env;

const TASK_EVENTS: WorkerEventName[] = ["task:started", "task:completed", "task:failed", "task:retrying"];

/** The row's status as the database holds it now. */
async function statusOf(id: string): Promise<string> {
  return (await taskRows(env.pool, env.schema, [id])).get(id)!.status as string;
}

describe("task events", () => {
  it("emits task:started, then task:completed with the result and duration once the result is stored", async () => {
    const worker = await startWorker({ tasks: { multiply: (a: number, b: number) => a * b } });
    const seen = recordEvents(worker, TASK_EVENTS);
    const statusWhenHeard: Promise<string>[] = [];
    worker.on("task:completed", ({ task }) => void statusWhenHeard.push(statusOf(task.id)));
    const task = await env.client.createTask("multiply", [6, 7]);
    const [{ task: heard, result, duration }] = await nextEvent(worker, "task:completed");
    expect(await Promise.all(statusWhenHeard)).toEqual(["COMPLETED"]);
    expect(result).toBe(42);
    expect(duration).toBeGreaterThanOrEqual(0);
    expect(heard).toEqual<RunningTask>({
      id: task.id,
      name: "multiply",
      queue: "default",
      args: [6, 7],
      attempt: 1,
      retryCount: 0,
      maxRetries: 0,
      workerId: worker.id,
    });
    expect(seen.map(([name]) => name)).toEqual(["task:started", "task:completed"]);
  });

  it("emits task:retrying with the stored runAt, then task:failed, each after its write", async () => {
    const worker = await startWorker({
      tasks: {
        failing: () => {
          throw new RangeError("out of range");
        },
      },
    });
    const seen = recordEvents(worker, TASK_EVENTS);
    // What the row held when each event was heard: the failure it reports is stored (the retry may run already).
    const stored: Promise<[string, number]>[] = [];
    const read = async (id: string): Promise<[string, number]> => {
      const row = (await taskRows(env.pool, env.schema, [id])).get(id)!;
      return [row.status as string, (row.errors as unknown[]).length];
    };
    worker.on("task:retrying", ({ task }) => void stored.push(read(task.id)));
    worker.on("task:failed", ({ task }) => void stored.push(read(task.id)));
    const failed = nextEvent(worker, "task:failed");
    const task = await env.client.createTask("failing", [], { maxRetries: 1 });
    const [{ error, type, message, duration }] = await failed;
    expect({ type, message }).toEqual({ type: "RangeError", message: "out of range" });
    expect(error).toMatch(/^RangeError: out of range\n/);
    expect(duration).toBeGreaterThanOrEqual(0);
    const [afterRetrying, afterFailed] = await Promise.all(stored);
    expect(afterRetrying![1]).toBeGreaterThanOrEqual(1);
    expect(afterFailed).toEqual(["FAILED", 2]);
    const names = seen.map(([name]) => name);
    expect(names).toEqual(["task:started", "task:retrying", "task:started", "task:failed"]);
    const retrying = seen[1]![1] as { runAt: Date; task: RunningTask };
    expect(retrying.task).toMatchObject({ id: task.id, attempt: 1 });
    expect(retrying.runAt).toBeInstanceOf(Date);
    expect((seen[3]![1] as { task: RunningTask }).task).toMatchObject({ attempt: 2, retryCount: 1 });
  });

  it("emits nothing but outcome:discarded for an outcome whose lease was gone", async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const worker = await startWorker({ tasks: { waits: () => held.then(() => "late") } });
    const seen = recordEvents(worker, [...TASK_EVENTS, "outcome:discarded"]);
    const started = nextEvent(worker, "task:started");
    const task = await env.client.createTask("waits");
    await started;
    // What a sweep and another worker's claim leave behind: the lease belongs to someone else now.
    await env.pool.query(`UPDATE "${env.schema}".tasks SET worker_id = 'someone-else', attempt = 2 WHERE id = $1`, [
      task.id,
    ]);
    const discarded = nextEvent(worker, "outcome:discarded");
    release();
    await discarded;
    expect(seen.map(([name]) => name)).toEqual(["task:started", "outcome:discarded"]);
  });

  it("emits task:swept for each task its sweep takes back", async () => {
    const ids = await insertCrashedTasks(env.pool, env.schema, 2, { maxRetries: 0 });
    const [requeued] = await insertCrashedTasks(env.pool, env.schema, 1, { started: false, queue: "elsewhere" });
    const worker = await startWorker({ tasks: { recorded: () => "ok" }, heartbeatInterval: 0.1, staleAfter: 0.5 });
    const seen = recordEvents(worker, ["task:swept"]);
    await nextEvent(worker, "swept");
    expect(seen.map(([, d]) => d)).toEqual(
      expect.arrayContaining([
        { id: ids[0], name: "recorded", queue: "default", attempt: 1, outcome: "failed", workerId: CRASHED_WORKER },
        { id: ids[1], name: "recorded", queue: "default", attempt: 1, outcome: "failed", workerId: CRASHED_WORKER },
        {
          id: requeued,
          name: "recorded",
          queue: "elsewhere",
          attempt: 1,
          outcome: "handed-back",
          workerId: CRASHED_WORKER,
        },
      ]),
    );
  });
});

describe("a listener that throws", () => {
  it("never breaks the worker: every task completes, other listeners still hear, worker:error reports it", async () => {
    const worker = await startWorker({ tasks: { noop: () => null }, concurrency: 4 });
    const errors: { error: Error; during: string }[] = [];
    worker.on("worker:error", (e) => void errors.push(e));
    worker.on("task:started", () => {
      throw new Error("started listener broke");
    });
    worker.on("task:completed", () => Promise.reject(new Error("async listener broke")));
    let completions = 0;
    worker.on("task:completed", () => void completions++);
    const tasks = await env.client.createTasks(Array.from({ length: 20 }, () => ({ name: "noop" })));
    for (const t of tasks) expect((await finished(t)).status).toBe("COMPLETED");
    await waitFor(
      "every completion heard and every listener fault reported",
      () => completions === 20 && errors.length === 40,
    );
    expect(errors.filter((e) => e.during === "a task:started listener")).toHaveLength(20);
    expect(errors.filter((e) => e.during === "a task:completed listener")).toHaveLength(20);
    expect(errors[0]!.error.message).toBe("started listener broke");
  });

  it("is only logged when it is a worker:error listener", async () => {
    const worker = await startWorker({
      tasks: [
        defineTask("t", () => Promise.reject(new Error("x")), {
          retryOn: () => {
            throw new Error("retryOn broke");
          },
        }),
      ],
    });
    worker.on("worker:error", () => {
      throw new Error("worker:error listener broke");
    });
    const done = await finished(await env.client.createTask("t"));
    expect(done.status).toBe("FAILED");
    expect(worker.listenerCount("worker:error")).toBe(1);
  });
});

describe("run-worker's IPC forwarding", () => {
  const procs = new WorkerProcs(() => env.schema);
  afterEach(() => procs.killAll());

  async function runAndStop(extra: string[]): Promise<string[]> {
    const p = await procs.start(extra);
    const task = await env.client.createTask("multiply", [2, 3]);
    expect((await finished(task)).status).toBe("COMPLETED");
    p.child.kill("SIGTERM");
    expect((await p.exited).code).toBe(0); // every event was sent before the exit
    return p.events.map((e) => e.event);
  }

  it("leaves the per-task events out unless --ipc-task-events asks for them", async () => {
    const quiet = await runAndStop([]);
    expect(quiet).toContain("worker:stopped");
    expect(quiet.filter((e) => e.startsWith("task:"))).toEqual([]);
    const told = await runAndStop(["--ipc-task-events"]);
    expect(told.filter((e) => e.startsWith("task:"))).toEqual(["task:started", "task:completed"]);
  });
});

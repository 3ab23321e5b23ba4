// The test modes: ImmediateClient runs handlers inside createTask, DummyClient records and runs on request. Neither
// needs Postgres or Redis: this file opens no connection.
import { readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  cancelTask,
  createTask,
  createTasks,
  defineTask,
  DummyClient,
  getTask,
  HandlerError,
  ImmediateClient,
  InvalidNameError,
  InvalidOptionError,
  InvalidTaskIdError,
  NotJsonError,
  setDefaultClient,
  SkiplockClient,
  taskContext,
  TaskCancelledError,
  TaskNameMismatchError,
  TaskNotFoundError,
  TaskTimeoutError,
  UnknownOptionError,
  UnknownTaskError,
  waitForCompletion,
  type TaskClient,
} from "../src/index.js";
import { ROOT } from "./helpers.js";

afterEach(() => {
  setDefaultClient(null);
});

const add = defineTask("math.add", (a: number, b: number) => a + b);
const boom = defineTask("boom", (message: string) => {
  throw new Error(message);
});

describe("ImmediateClient", () => {
  it("runs the handler inside createTask and returns the task COMPLETED, its result through JSON", async () => {
    const client = new ImmediateClient({
      tasks: { stamp: (n: number) => ({ n, at: new Date(0), gone: undefined }), nothing: () => {} },
    });
    const task = await client.createTask("stamp", [1], { queue: "q", priority: 5 });
    expect(task).toMatchObject({
      id: "1",
      name: "stamp",
      args: [1],
      queue: "q",
      priority: 5,
      status: "COMPLETED",
      result: { n: 1, at: "1970-01-01T00:00:00.000Z" },
      error: null,
      attempt: 1,
      retryCount: 0,
    });
    expect(task.result).not.toHaveProperty("gone");
    expect(task.finishedAt!.getTime()).toBeGreaterThanOrEqual(task.startedAt!.getTime());
    expect(task.duration).toBeGreaterThanOrEqual(0);
    expect(await client.getTask(task.id)).toEqual(task);
    expect(await client.waitForCompletion(task.id)).toEqual(task);
    expect((await client.createTask("nothing")).result).toBeNull();
  });

  it("returns a FAILED task with the error's text, or rethrows the handler's error with propagateErrors", async () => {
    const client = new ImmediateClient({ tasks: [boom] });
    const failed = await client.createTask("boom", ["it broke"]);
    expect(failed.status).toBe("FAILED");
    expect(failed.error).toMatch(/^Error: it broke\n\s+at /);
    expect(failed.errors).toEqual([
      expect.objectContaining({ type: "Error", message: "it broke", attempt: 1, workerId: "ImmediateClient" }),
    ]);

    const strict = new ImmediateClient({ tasks: [boom], propagateErrors: true });
    await expect(strict.createTask("boom", ["loudly"])).rejects.toThrow(new Error("loudly"));
    expect((await strict.getTask("1"))?.status).toBe("FAILED"); // recorded all the same
  });

  it("runs a task once, whatever its maxRetries (as django's immediate backend does)", async () => {
    let runs = 0;
    const client = new ImmediateClient({
      tasks: {
        flaky: () => {
          runs++;
          throw new Error("no");
        },
      },
    });
    const task = await client.createTask("flaky", [], { maxRetries: 3 });
    expect(task).toMatchObject({ status: "FAILED", attempt: 1, retryCount: 0, maxRetries: 3 });
    expect(runs).toBe(1);
  });

  it("refuses what the real client refuses, before running anything", async () => {
    const handler = vi.fn();
    const client = new ImmediateClient({ tasks: { t: handler } });
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    for (const args of [[1n], [() => 1], [cycle], [[undefined]], "not an array"]) {
      await expect(client.createTask("t", args as never)).rejects.toThrow(NotJsonError);
    }
    await expect(client.createTask("t", [], { priorty: 1 } as never)).rejects.toThrow(UnknownOptionError);
    await expect(client.createTask("t", [], { queue: "bad queue" })).rejects.toThrow(InvalidNameError);
    await expect(client.createTask("bad name", [])).rejects.toThrow(InvalidNameError);
    await expect(client.createTask("t", [], { timeout: -1 })).rejects.toThrow(InvalidOptionError);
    // A batch is checked whole before any of it is kept or run.
    await expect(client.createTasks([{ name: "t" }, { name: "t", args: [1n] }])).rejects.toThrow(/specs\[1\]\.args/);
    expect(handler).not.toHaveBeenCalled();
    expect(await client.getTask("1")).toBeNull();
  });

  it("gives the handler its context: as taskContext() and as this, with progress and setMeta recorded", async () => {
    const seen: unknown[] = [];
    const client = new ImmediateClient({
      tasks: {
        report: async function (this: unknown, n: number) {
          const ctx = taskContext();
          seen.push(this === ctx, ctx.signal instanceof AbortSignal);
          seen.push({ id: ctx.id, name: ctx.name, queue: ctx.queue, attempt: ctx.attempt, maxRetries: ctx.maxRetries });
          await (ctx as any).progress(0.5, "half way");
          await (ctx as any).setMeta({ tenant: "acme" });
          await (ctx as any).setMeta({ step: n });
          return n;
        },
        badProgress: async () => {
          await (taskContext() as any).progress(2);
        },
        destructured: async () => {
          // As in a worker, the methods work unbound.
          const { progress, setMeta } = taskContext();
          await progress(1, "done");
          await setMeta({ unbound: true });
        },
      },
    });
    const task = await client.createTask("report", [7], { queue: "reports", maxRetries: 2 });
    expect(seen).toEqual([true, true, { id: task.id, name: "report", queue: "reports", attempt: 1, maxRetries: 2 }]);
    expect(task.progress).toEqual({ fraction: 0.5, message: "half way", at: expect.any(Date) });
    expect(task.meta).toEqual({ tenant: "acme", step: 7 });
    const bad = await client.createTask("badProgress");
    expect(bad).toMatchObject({ status: "FAILED", errors: [expect.objectContaining({ type: "InvalidOptionError" })] });
    expect(() => taskContext()).toThrow(/outside a running task/);
    const unbound = await client.createTask("destructured");
    expect(unbound).toMatchObject({
      status: "COMPLETED",
      progress: { fraction: 1, message: "done" },
      meta: { unbound: true },
    });
  });

  it("fails a task whose name has no handler, as a worker would (or throws it with propagateErrors)", async () => {
    const task = await new ImmediateClient({ tasks: [add] }).createTask("nobody");
    expect(task.status).toBe("FAILED");
    expect(task.error).toMatch(/^UnknownTaskError: unknown task "nobody"/);
    await expect(new ImmediateClient({ tasks: [add], propagateErrors: true }).createTask("nobody")).rejects.toThrow(
      UnknownTaskError,
    );
  });

  it("fails a task past its timeout, its signal fired with TaskTimeoutError", async () => {
    let reason: unknown;
    const client = new ImmediateClient({
      tasks: {
        slow: () =>
          new Promise((resolve) => {
            const { signal } = taskContext();
            signal.addEventListener("abort", () => {
              reason = signal.reason;
              resolve("too late");
            });
          }),
      },
    });
    const task = await client.createTask("slow", [], { timeout: 0.05 });
    expect(task.status).toBe("FAILED");
    expect(task.error).toMatch(/^TaskTimeoutError: task timed out after 0.05 s/);
    expect(reason).toBeInstanceOf(TaskTimeoutError);
  });

  it("fails a task whose result JSON cannot carry, with a HandlerError", async () => {
    const tasks = { big: () => 10n };
    expect((await new ImmediateClient({ tasks }).createTask("big")).error).toMatch(/^HandlerError: .*BigInt/);
    await expect(new ImmediateClient({ tasks, propagateErrors: true }).createTask("big")).rejects.toThrow(HandlerError);
  });

  it("runs a task enqueued from a handler before that handler goes on, each with its own context", async () => {
    const order: string[] = [];
    const inner = defineTask("inner", () => {
      order.push(`inner ${taskContext().name}`);
    });
    const outer = defineTask("outer", async () => {
      order.push("outer starts");
      await inner.enqueue();
      order.push(`outer ends in ${taskContext().name}`);
    });
    setDefaultClient(new ImmediateClient({ tasks: [inner, outer] }));
    expect((await outer.enqueue()).status).toBe("COMPLETED");
    expect(order).toEqual(["outer starts", "inner inner", "outer ends in outer"]);
  });

  it("runs a batch in order and returns it in order", async () => {
    const client = new ImmediateClient({ tasks: [add] });
    const tasks = await client.createTasks([
      { name: "math.add", args: [1, 2] },
      { name: "math.add", args: [3, 4], priority: 9 },
    ]);
    expect(tasks.map((t) => [t.id, t.status, t.result])).toEqual([
      ["1", "COMPLETED", 3],
      ["2", "COMPLETED", 7],
    ]);
  });

  it("refuses bad options", () => {
    expect(() => new ImmediateClient({} as never)).toThrow(InvalidOptionError);
    expect(() => new ImmediateClient({ tasks: {}, propagate: true } as never)).toThrow(UnknownOptionError);
    expect(() => new ImmediateClient({ tasks: { "bad name": () => 1 } })).toThrow(InvalidNameError);
    // A handle from using() is no definition: only what defineTask returns registers a handler.
    expect(() => new ImmediateClient({ tasks: [add.using({ priority: 1 }) as never] })).toThrow(InvalidOptionError);
  });
});

describe("DummyClient", () => {
  it("records what is enqueued, PENDING, without running it", async () => {
    const handler = vi.fn();
    const dummy = new DummyClient();
    const task = await dummy.createTask("send", ["a@example.com"], { queue: "email", delay: 60 });
    expect(task).toMatchObject({ id: "1", name: "send", args: ["a@example.com"], queue: "email", status: "PENDING" });
    expect(task.runAt.getTime() - task.createdAt.getTime()).toBe(60_000);
    expect(dummy.tasks).toEqual([task]);
    expect(await dummy.getTask("1")).toEqual(task);
    expect(handler).not.toHaveBeenCalled();
    await expect(dummy.createTask("send", [1n])).rejects.toThrow(NotJsonError);
    expect(dummy.tasks).toHaveLength(1);
  });

  it("runAll runs the PENDING tasks with the handlers given and returns them finished", async () => {
    const dummy = new DummyClient();
    await dummy.createTasks([
      { name: "math.add", args: [1, 2] },
      { name: "boom", args: ["no"] },
      { name: "math.add", args: [5, 5] },
    ]);
    const cancelled = await dummy.cancelTask("3");
    expect(cancelled.status).toBe("CANCELLED");
    const waiting = dummy.waitForCompletion("1");
    const done = await dummy.runAll({ tasks: [add, boom] });
    expect(done.map((t) => [t.id, t.status, t.result])).toEqual([
      ["1", "COMPLETED", 3],
      ["2", "FAILED", null],
    ]);
    expect(done[1]!.error).toMatch(/^Error: no/);
    expect((await waiting)?.result).toBe(3);
    expect(dummy.tasks.map((t) => t.status)).toEqual(["COMPLETED", "FAILED", "CANCELLED"]);
    expect(await dummy.runAll({ tasks: [add, boom] })).toEqual([]); // nothing left PENDING
  });

  it("leaves what handlers enqueue during runAll for the next runAll", async () => {
    const dummy = new DummyClient();
    setDefaultClient(dummy);
    const again = defineTask("again", async (n: number) => {
      if (n > 0) await again.enqueue(n - 1);
      return n;
    });
    await again.enqueue(2);
    expect((await dummy.runAll({ tasks: [again] })).map((t) => t.result)).toEqual([2]);
    expect((await dummy.runAll({ tasks: [again] })).map((t) => t.result)).toEqual([1]);
    expect(dummy.tasks.map((t) => [t.args[0], t.status])).toEqual([
      [2, "COMPLETED"],
      [1, "COMPLETED"],
      [0, "PENDING"],
    ]);
  });

  it("runAll rethrows the first handler error with propagateErrors", async () => {
    const dummy = new DummyClient();
    await boom.using({ client: dummy }).enqueueMany([["first"], ["second"]]);
    await expect(dummy.runAll({ tasks: [boom], propagateErrors: true })).rejects.toThrow(/^first$/);
    expect(dummy.tasks.map((t) => t.status)).toEqual(["FAILED", "PENDING"]);
  });

  it("clear() forgets every task; a waiter gets null", async () => {
    const dummy = new DummyClient();
    const t = await dummy.createTask("x");
    const waiting = dummy.waitForCompletion(t.id);
    dummy.clear();
    expect(dummy.tasks).toEqual([]);
    expect(await dummy.getTask(t.id)).toBeNull();
    expect(await waiting).toBeNull();
  });

  it("waitForCompletion times out with null; unknown and invalid ids are refused as the real client does", async () => {
    const dummy = new DummyClient();
    const t = await dummy.createTask("x");
    expect(await dummy.waitForCompletion(t.id, { timeout: 0.01 })).toBeNull();
    await expect(dummy.waitForCompletion("99")).rejects.toThrow(TaskNotFoundError);
    await expect(dummy.cancelTask("99")).rejects.toThrow(TaskNotFoundError);
    await expect(dummy.getTask("x")).rejects.toThrow(InvalidTaskIdError);
    await expect(dummy.waitForCompletion(t.id, { timeout: -1 })).rejects.toThrow(InvalidOptionError);
    expect(await dummy.getTask("99")).toBeNull();
  });

  it("a copy for every read: changing a returned task changes nothing kept", async () => {
    const dummy = new DummyClient();
    const t = await dummy.createTask("x", [{ a: 1 }]);
    (t.args[0] as any).a = 2;
    dummy.tasks[0]!.status = "FAILED";
    expect(await dummy.getTask(t.id)).toMatchObject({ args: [{ a: 1 }], status: "PENDING" });
  });
});

describe("setDefaultClient", () => {
  it("puts a client behind the module-level functions and every handle without a client of its own", async () => {
    const dummy = new DummyClient();
    expect(setDefaultClient(dummy)).toBeNull();
    const a = await createTask("math.add", [1, 1]);
    const [b] = await createTasks([{ name: "math.add", args: [2, 2] }]);
    const c = await add.enqueue(3, 3);
    const d = await add.using({ priority: 1 }).enqueue(4, 4);
    expect(dummy.tasks.map((t) => t.id)).toEqual([a.id, b!.id, c.id, d.id]);
    expect((await getTask(c.id))?.args).toEqual([3, 3]);
    expect((await cancelTask(d.id)).status).toBe("CANCELLED");
    await dummy.runAll({ tasks: [add] });
    expect((await waitForCompletion(a.id))?.result).toBe(2);
    expect((await add.getResult(c.id))?.result).toBe(6);
    expect((await add.waitFor(b!.id, { timeout: 1 }))?.result).toBe(4);

    const immediate = new ImmediateClient({ tasks: [add] });
    expect(setDefaultClient(immediate)).toBe(dummy); // what it replaced, to put back
    expect((await add.enqueue(20, 22)).result).toBe(42);
    expect(setDefaultClient(null)).toBe(immediate);
  });

  it("a handle's own client wins over the default", async () => {
    const mine = new DummyClient();
    setDefaultClient(new ImmediateClient({ tasks: [add] }));
    const pinned = add.using({ client: mine });
    expect((await pinned.enqueue(1, 2)).status).toBe("PENDING");
    expect((await pinned.using({ priority: 3 }).enqueue(1, 2)).status).toBe("PENDING");
    expect(mine.tasks).toHaveLength(2);
  });

  it("refuses what is not a client", () => {
    expect(() => setDefaultClient({} as never)).toThrow(InvalidOptionError);
    expect(() => setDefaultClient(undefined as never)).toThrow(InvalidOptionError);
  });

  it("the real client and both test modes are TaskClients", () => {
    const clients: TaskClient[] = [new SkiplockClient({ databaseUrl: "postgres://127.0.0.1:1/x" }), new DummyClient()];
    clients.push(new ImmediateClient({ tasks: {} }));
    expect(clients).toHaveLength(3);
  });
});

describe("handles on a test client", () => {
  it("getResult and waitFor refuse a task of another name", async () => {
    const dummy = new DummyClient();
    const other = await dummy.createTask("other.task");
    const handle = add.using({ client: dummy });
    const err = await handle.getResult(other.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskNameMismatchError);
    expect(err).toMatchObject({ code: "TASK_NAME_MISMATCH", id: other.id, expected: "math.add", actual: "other.task" });
    await expect(handle.waitFor(other.id)).rejects.toThrow(TaskNameMismatchError); // at once, no wait
    expect(await handle.getResult("99")).toBeNull();
    await expect(handle.waitFor("99")).rejects.toThrow(TaskNotFoundError);
    await expect(handle.getResult("x")).rejects.toThrow(InvalidTaskIdError);
    await expect(handle.waitFor(other.id, { timeout: -1 })).rejects.toThrow(InvalidOptionError);
  });

  it("using() with nothing new is a handle like the first; detached methods work", async () => {
    const dummy = new DummyClient();
    const { enqueue } = add.using({ client: dummy }).using();
    const tasks = await Promise.all([[1, 2] as const, [3, 4] as const].map(([a, b]) => enqueue(a, b)));
    expect(tasks.map((t) => t.args)).toEqual([
      [1, 2],
      [3, 4],
    ]);
  });

  it("enqueueMany is one createTasks call with the handle's options", async () => {
    const dummy = new DummyClient();
    const createTasksSpy = vi.spyOn(dummy, "createTasks");
    const createTaskSpy = vi.spyOn(dummy, "createTask");
    const tasks = await add.using({ client: dummy, queue: "math", priority: 2 }).enqueueMany([
      [1, 2],
      [3, 4],
    ]);
    expect(createTasksSpy).toHaveBeenCalledTimes(1);
    expect(createTaskSpy).not.toHaveBeenCalled();
    expect(tasks.map((t) => [t.args, t.queue, t.priority])).toEqual([
      [[1, 2], "math", 2],
      [[3, 4], "math", 2],
    ]);
    expect(await add.using({ client: dummy }).enqueueMany([])).toEqual([]);
  });
});

describe("the options production code relies on", () => {
  it("uniqueKey keep: a live task with the key is returned instead of a new one; a final one frees the key", async () => {
    const dummy = new DummyClient();
    const first = await dummy.createTask("sync", ["a"], { uniqueKey: "sync:1", meta: { by: "first" } });
    const again = await dummy.createTask("sync", ["b"], { uniqueKey: "sync:1", priority: 9 });
    expect(again).toEqual(first); // unchanged: args, priority and meta are the first call's
    expect(await dummy.createTask("other.name", [], { uniqueKey: "sync:1" })).toEqual(first); // keys span names
    expect(dummy.tasks).toHaveLength(1);
    await dummy.cancelTask(first.id);
    const fresh = await dummy.createTask("sync", ["c"], { uniqueKey: "sync:1" });
    expect(fresh).toMatchObject({ id: "2", args: ["c"], status: "PENDING", uniqueKey: "sync:1" });
    await dummy.runAll({ tasks: { sync: () => "done" } });
    expect((await dummy.createTask("sync", ["d"], { uniqueKey: "sync:1" })).id).toBe("3");
  });

  it("uniqueKey keep with ImmediateClient: a running holder is returned, not run again", async () => {
    const handler = vi.fn(async (n: number) => {
      if (n === 1) return (await createTask("job", [2], { uniqueKey: "job" })).status; // its own key: itself
      return n;
    });
    setDefaultClient(new ImmediateClient({ tasks: { job: handler } }));
    const task = await createTask("job", [1], { uniqueKey: "job" });
    expect(task).toMatchObject({ id: "1", status: "COMPLETED", result: "PROGRESS" });
    expect(handler).toHaveBeenCalledTimes(1);
    expect(await createTask("job", [3], { uniqueKey: "job" })).toMatchObject({ id: "2", result: 3 });
  });

  it("uniqueKey replace: a PENDING holder takes the new args, runAt, priority and meta (debounce)", async () => {
    const dummy = new DummyClient();
    const first = await dummy.createTask("index", [1], { uniqueKey: "ix", queue: "search", meta: { n: 1 }, delay: 5 });
    const at = new Date(Date.now() + 60_000);
    const replaced = await dummy.createTask("index", [2], {
      uniqueKey: "ix",
      uniqueMode: "replace",
      priority: 7,
      runAt: at,
    });
    expect(replaced).toMatchObject({ id: first.id, args: [2], priority: 7, runAt: at, meta: {}, queue: "search" });
    expect(replaced.updatedAt.getTime()).toBeGreaterThanOrEqual(first.updatedAt.getTime());
    // No runAt or delay: due now, as the database's now() makes it.
    const now = await dummy.createTask("index", [3], { uniqueKey: "ix", uniqueMode: "replace", meta: { n: 3 } });
    expect(now.runAt.getTime()).toBeLessThanOrEqual(Date.now());
    expect(dummy.tasks.map((t) => [t.id, t.args, t.meta])).toEqual([["1", [3], { n: 3 }]]);
    await expect(dummy.createTask("index", [], { uniqueMode: "replace" })).rejects.toThrow(InvalidOptionError);
  });

  it("uniqueKey replace on a running holder leaves it and queues a new task, which holds the key", async () => {
    const dummy = new DummyClient();
    setDefaultClient(dummy);
    const index = defineTask("index", async (n: number) => {
      if (n === 1) await index.using({ uniqueKey: "ix", uniqueMode: "replace" }).enqueue(2);
      return n;
    });
    await index.using({ uniqueKey: "ix" }).enqueue(1);
    expect((await dummy.runAll({ tasks: [index] })).map((t) => [t.id, t.status, t.result])).toEqual([
      ["1", "COMPLETED", 1], // ran with its own args
    ]);
    expect(dummy.tasks.map((t) => [t.id, t.args, t.status])).toEqual([
      ["1", [1], "COMPLETED"],
      ["2", [2], "PENDING"],
    ]);
    expect((await index.using({ uniqueKey: "ix" }).enqueue(3)).id).toBe("2");
  });

  it("one key twice in a batch acts as two enqueues in turn: both get the one task", async () => {
    const dummy = new DummyClient();
    const [a, b, c] = await dummy.createTasks([
      { name: "t", args: [1], uniqueKey: "k" },
      { name: "t", args: [2], uniqueKey: "k", uniqueMode: "replace", priority: 3 },
      { name: "t", args: [3], uniqueKey: "k" },
    ]);
    expect([a!.id, b!.id, c!.id]).toEqual(["1", "1", "1"]);
    expect(c).toMatchObject({ args: [2], priority: 3 });
    expect(dummy.tasks).toHaveLength(1);
    const immediate = new ImmediateClient({ tasks: { t: (n: number) => n } });
    const ran = await immediate.createTasks([
      { name: "t", args: [1], uniqueKey: "k" },
      { name: "t", args: [2], uniqueKey: "k", uniqueMode: "replace" },
    ]);
    expect(ran.map((t) => [t.id, t.status, t.result])).toEqual([
      ["1", "COMPLETED", 2],
      ["1", "COMPLETED", 2],
    ]);
  });

  it("stores meta, queue, priority and runAt as the real client does", async () => {
    const dummy = new DummyClient();
    const at = new Date(Date.now() + 3600_000);
    const task = await dummy.createTask("x", [], {
      meta: { tenant: "t1", tags: ["a"] },
      queue: "q",
      priority: -5,
      runAt: at,
    });
    expect(task).toMatchObject({ meta: { tenant: "t1", tags: ["a"] }, queue: "q", priority: -5, runAt: at });
    expect((await dummy.createTask("x")).meta).toEqual({});
    await expect(dummy.createTask("x", [], { meta: [] as never })).rejects.toThrow(NotJsonError);
    await expect(dummy.createTask("x", [], { priority: 101 })).rejects.toThrow(InvalidOptionError);
    await expect(dummy.createTask("x", [], { runAt: at, delay: 1 })).rejects.toThrow(InvalidOptionError);
  });

  it("runAll runs in the order a worker claims: priority, then runAt, then id; tasks not yet due run too", async () => {
    const dummy = new DummyClient();
    const soon = new Date(Date.now() + 1000);
    await dummy.createTasks([
      { name: "t", args: ["low"], priority: -1 },
      { name: "t", args: ["later"], delay: 3600 },
      { name: "t", args: ["now-b"] },
      { name: "t", args: ["high"], priority: 10, delay: 60 },
      { name: "t", args: ["soon"], runAt: soon },
    ]);
    await dummy.createTask("t", ["now-a"], { runAt: new Date(Date.now() - 1000) });
    const done = await dummy.runAll({ tasks: { t: (s: string) => s } });
    expect(done.map((t) => t.result)).toEqual(["high", "now-a", "now-b", "soon", "later", "low"]);
  });

  it("runAll picks each next task afresh: one a handler replaced runs with its new values at its new place", async () => {
    const dummy = new DummyClient();
    setDefaultClient(dummy);
    const step = defineTask("step", async (s: string) => {
      if (s === "first") await step.using({ uniqueKey: "b", uniqueMode: "replace", priority: 9 }).enqueue("b-new");
      if (s === "c") await cancelTask("4");
      return s;
    });
    await step.using({ priority: 5 }).enqueue("first");
    await step.using({ uniqueKey: "b" }).enqueue("b-old");
    await step.using({ priority: 1 }).enqueue("c");
    await step.enqueue("cancelled by c");
    const done = await dummy.runAll({ tasks: [step] });
    expect(done.map((t) => t.result)).toEqual(["first", "b-new", "c"]);
    expect((await dummy.getTask("4"))?.status).toBe("CANCELLED");
  });

  it("accepts a transaction and does not use it: the task is kept (and run) at once", async () => {
    const trx = { isTransaction: true, withoutPlugins: () => ({}) } as never; // what a caller's kysely trx looks like
    const immediate = new ImmediateClient({ tasks: [add] });
    expect((await add.using({ client: immediate, transaction: trx }).enqueue(1, 2)).result).toBe(3);
    expect((await add.using({ client: immediate, transaction: trx }).enqueueMany([[2, 2]]))[0]?.result).toBe(4);
    const dummy = new DummyClient();
    await dummy.createTasks([{ name: "x" }], { transaction: trx });
    await dummy.createTask("x", [], { transaction: trx });
    expect(dummy.tasks).toHaveLength(2);
    await expect(dummy.createTasks([], { transacton: trx } as never)).rejects.toThrow(UnknownOptionError);
  });

  it("cancelTask on a running task fires its signal with TaskCancelledError; the task ends CANCELLED", async () => {
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const reasons: unknown[] = [];
    const client = new ImmediateClient({
      tasks: {
        wait: () =>
          new Promise((_, reject) => {
            const { signal } = taskContext();
            signal.addEventListener("abort", () => (reasons.push(signal.reason), reject(signal.reason as Error)));
            started();
          }),
      },
      propagateErrors: true, // a cancelled task did not fail: nothing is thrown
    });
    const enqueued = client.createTask("wait");
    await running;
    const waiting = client.waitForCompletion("1");
    expect(await client.cancelTask("1")).toMatchObject({ status: "PROGRESS", cancelRequested: true });
    const task = await enqueued;
    expect(reasons).toEqual([expect.any(TaskCancelledError)]);
    expect(task).toMatchObject({
      status: "CANCELLED",
      error: "TaskCancelledError: the task was cancelled",
      result: null,
      cancelRequested: true,
      errors: [],
    });
    expect(task.finishedAt).not.toBeNull();
    expect(await waiting).toEqual(task);
    expect(await client.cancelTask("1")).toEqual(task); // final: unchanged
  });

  it("ImmediateClient does not run a task of a batch that a handler before it cancelled", async () => {
    const ran: string[] = [];
    const client = new ImmediateClient({
      tasks: {
        t: async (s: string) => {
          ran.push(s);
          if (s === "a") await client.cancelTask("2");
        },
      },
    });
    const done = await client.createTasks([
      { name: "t", args: ["a"] },
      { name: "t", args: ["b"] },
      { name: "t", args: ["c"] },
    ]);
    expect(ran).toEqual(["a", "c"]);
    expect(done.map((t) => t.status)).toEqual(["COMPLETED", "CANCELLED", "COMPLETED"]);
  });

  it("a handler that returns successfully after a cancel leaves its task COMPLETED (the work was done)", async () => {
    const dummy = new DummyClient();
    setDefaultClient(dummy);
    const work = defineTask("work", async () => {
      const ctx = taskContext();
      await cancelTask(ctx.id); // as if someone cancelled it meanwhile
      return ctx.signal.aborted ? "finished anyway" : "not told";
    });
    const stop = defineTask("stop", async () => {
      await cancelTask(taskContext().id);
      throw new Error("stopped on my own terms"); // any failure after the request ends it CANCELLED
    });
    await work.enqueue();
    await stop.enqueue();
    const done = await dummy.runAll({ tasks: [work, stop] });
    expect(done.map((t) => [t.name, t.status, t.result, t.error])).toEqual([
      ["work", "COMPLETED", "finished anyway", null],
      ["stop", "CANCELLED", null, "TaskCancelledError: the task was cancelled"],
    ]);
  });
});

describe("the test modes' modules", () => {
  it("import nothing that talks to Postgres or Redis (nor the real client)", () => {
    // Walks the value imports (not `import type`) from src/testing/ through the package's own modules.
    const forbidden = /^(pg|kysely|redis|redlock)$|\/(client|db\/.*|notify\/.*|sql\/.*)\.js$/;
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, "utf8");
      for (const m of source.matchAll(/^import (?!type )[^;]*?from "([^"]+)";/gms)) {
        const spec = m[1]!;
        expect(spec, `${relative(ROOT, file)} imports ${spec}`).not.toMatch(forbidden);
        if (spec.startsWith("."))
          visit(join(dirname(file), spec).replace(/\.js$/, existsTs(file, spec) ? ".ts" : ".js"));
      }
    };
    for (const f of ["immediate-client.ts", "dummy-client.ts"]) visit(join(ROOT, "src/testing", f));
    expect(seen.size).toBeGreaterThan(5);
  });
});

function existsTs(from: string, spec: string): boolean {
  try {
    readFileSync(join(dirname(from), spec).replace(/\.js$/, ".ts"));
    return true;
  } catch {
    return false;
  }
}

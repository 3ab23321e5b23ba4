// Task handles (defineTask) against Postgres and a real Worker: enqueue, enqueueMany, using, getResult, waitFor.
import pg from "pg";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  defineTask,
  InvalidOptionError,
  setDefaultClient,
  taskContext,
  TaskNameMismatchError,
  TaskNotFoundError,
  UnknownOptionError,
} from "../src/index.js";
import { taskRows } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";

const env = workerFixture({ label: "define", deleteTasksAfterEach: true });

afterEach(() => {
  setDefaultClient(null);
});

const multiply = defineTask(
  "math.multiply",
  (a: number, b: number) => ({ product: a * b, attempt: taskContext().attempt }),
  {
    queue: "math",
    priority: 4,
    timeout: 30,
  },
);
const fail = defineTask("math.fail", (why: string) => {
  throw new Error(why);
});

describe("a task handle", () => {
  it("enqueues with the definition's options; waitFor and getResult give the typed outcome", async () => {
    await env.startWorker({ tasks: [multiply, fail] });
    const handle = multiply.using({ client: env.client });
    const task = await handle.enqueue(6, 7);
    expect(task).toMatchObject({ name: "math.multiply", args: [6, 7], queue: "math", priority: 4, timeout: 30 });
    const done = await handle.waitFor(task.id, { timeout: 20 });
    expect(done).toMatchObject({ status: "COMPLETED", result: { product: 42, attempt: 1 } });
    expect(done!.result!.product).toBe(42); // typed: { product: number; attempt: number }
    expect(await handle.getResult(task.id)).toEqual(done);
    // A task already finished needs no wait: its result comes back even with no time to wait.
    expect(await handle.waitFor(task.id, { timeout: 0 })).toEqual(done);

    const failed = await fail.using({ client: env.client }).enqueue("no luck");
    const failedDone = await fail.using({ client: env.client }).waitFor(failed.id, { timeout: 20 });
    expect(failedDone).toMatchObject({ status: "FAILED", error: expect.stringMatching(/^Error: no luck/) });
  });

  it("enqueueMany writes every task in one createTasks call, in order, and the worker runs them all", async () => {
    await env.startWorker({ tasks: [multiply] });
    const createTasks = vi.spyOn(env.client, "createTasks");
    const createTask = vi.spyOn(env.client, "createTask");
    const handle = multiply.using({ client: env.client, priority: -2 });
    const tasks = await handle.enqueueMany([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    expect(createTasks).toHaveBeenCalledTimes(1);
    expect(createTask).not.toHaveBeenCalled();
    createTasks.mockRestore();
    createTask.mockRestore();
    expect(tasks.map((t) => [t.args, t.queue, t.priority])).toEqual([
      [[1, 2], "math", -2],
      [[3, 4], "math", -2],
      [[5, 6], "math", -2],
    ]);
    const ids = tasks.map((t) => BigInt(t.id));
    expect([...ids].sort((a, b) => (a < b ? -1 : 1))).toEqual(ids);
    const done = await Promise.all(tasks.map((t) => handle.waitFor(t.id, { timeout: 20 })));
    expect(done.map((t) => t?.result?.product)).toEqual([2, 12, 30]);
    expect(await handle.enqueueMany([])).toEqual([]);
  });

  it("using() layers options into a new handle and leaves the original unchanged", async () => {
    const base = multiply.using({ client: env.client });
    const urgent = base.using({ priority: 50, maxRetries: 2 });
    const later = urgent.using({ queue: "later", delay: 3600 });
    const at = new Date(Date.now() + 7200_000);
    const rescheduled = later.using({ runAt: at }); // a runAt replaces the layer below's delay
    const [a, b, c, d] = [
      await base.enqueue(1, 1),
      await urgent.enqueue(1, 1),
      await later.enqueue(1, 1),
      await rescheduled.enqueue(1, 1),
    ];
    const rows = await taskRows(env.pool, env.schema, [a!.id, b!.id, c!.id, d!.id]);
    const pick = (id: string) => {
      const r = rows.get(id)!;
      return { queue: r.queue, priority: r.priority, max_retries: r.max_retries, timeout: r.timeout };
    };
    expect(pick(a!.id)).toEqual({ queue: "math", priority: 4, max_retries: null, timeout: 30 });
    expect(pick(b!.id)).toEqual({ queue: "math", priority: 50, max_retries: 2, timeout: 30 });
    expect(pick(c!.id)).toEqual({ queue: "later", priority: 50, max_retries: 2, timeout: 30 });
    expect(pick(d!.id)).toEqual({ queue: "later", priority: 50, max_retries: 2, timeout: 30 });
    expect(c!.runAt.getTime() - c!.createdAt.getTime()).toBeCloseTo(3600_000, -3);
    expect(rows.get(d!.id)!.run_at.getTime()).toBe(at.getTime());
    // The definition itself kept its options.
    expect(multiply.options).toEqual({ queue: "math", priority: 4, timeout: 30 });
    expect((await base.enqueue(2, 2)).priority).toBe(4);
  });

  it("refuses a bad option when using() is called, not at the next enqueue", () => {
    expect(() => multiply.using({ priority: 1.5 })).toThrow(InvalidOptionError);
    expect(() => multiply.using({ queue: "no spaces" })).toThrow(/queue name/);
    expect(() => multiply.using({ client: {} as never })).toThrow(InvalidOptionError);
    expect(() => multiply.using({ prority: 1 } as never)).toThrow(UnknownOptionError);
  });

  it("getResult and waitFor refuse the id of a task of another name, with a typed error", async () => {
    const other = await fail.using({ client: env.client }).enqueue("x");
    const handle = multiply.using({ client: env.client });
    const err = await handle.getResult(other.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskNameMismatchError);
    expect(err).toMatchObject({ id: other.id, expected: "math.multiply", actual: "math.fail" });
    // No worker runs it: the refusal comes before any wait (no timeout given).
    await expect(handle.waitFor(other.id)).rejects.toThrow(TaskNameMismatchError);
    expect(await handle.getResult("999999999")).toBeNull();
    await expect(handle.waitFor("999999999")).rejects.toThrow(TaskNotFoundError);
  });

  it("waitFor resolves null when the task does not finish in time", async () => {
    const handle = multiply.using({ client: env.client, queue: "nobody.serves.this" });
    const task = await handle.enqueue(1, 2);
    expect(await handle.waitFor(task.id, { timeout: 0.2 })).toBeNull();
    expect((await handle.getResult(task.id))?.status).toBe("PENDING");
  });

  it("uses the client setDefaultClient set when it has none of its own", async () => {
    await env.startWorker({ tasks: [multiply] });
    setDefaultClient(env.client);
    const task = await multiply.enqueue(3, 3);
    expect((await multiply.waitFor(task.id, { timeout: 20 }))?.result?.product).toBe(9);
    expect((await env.client.getTask(task.id))?.name).toBe("math.multiply");
  });
});

describe("a task handle with the enqueue options", () => {
  const exists = async (ids: string[]) =>
    (await env.pool.query(`SELECT id FROM "${env.schema}".tasks WHERE id = ANY($1::bigint[])`, [ids])).rowCount;

  /** A pg client of the test's own (not skiplock's), in BEGIN; ended by the caller. */
  async function inTransaction(): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: env.databaseUrl });
    await c.connect();
    await c.query("BEGIN");
    return c;
  }

  it("using({ uniqueKey }) returns the live task with the key instead of a new one", async () => {
    const handle = multiply.using({ client: env.client, uniqueKey: "product:6x7", queue: "nobody.serves.this" });
    const first = await handle.enqueue(6, 7);
    const again = await handle.using({ priority: 9 }).enqueue(1, 1);
    expect(again).toMatchObject({ id: first.id, args: [6, 7], priority: 4, uniqueKey: "product:6x7" });
    const debounced = await handle.using({ uniqueMode: "replace", delay: 60 }).enqueue(2, 3);
    expect(debounced).toMatchObject({ id: first.id, args: [2, 3] });
    const rows = await taskRows(env.pool, env.schema, [first.id]);
    expect(rows.get(first.id)).toMatchObject({ args: [2, 3], unique_key: "product:6x7", status: "PENDING" });
    const [a, b] = await handle.enqueueMany([
      [1, 2],
      [3, 4],
    ]);
    expect([a!.id, b!.id]).toEqual([first.id, first.id]);
  });

  it("using({ meta }) stores the meta on the task", async () => {
    const handle = multiply.using({ client: env.client, meta: { requestId: "r-1", tenant: { id: 7 } } });
    const task = await handle.enqueue(2, 2);
    expect(task.meta).toEqual({ requestId: "r-1", tenant: { id: 7 } });
    expect((await handle.getResult(task.id))?.meta).toEqual({ requestId: "r-1", tenant: { id: 7 } });
    const [many] = await handle.using({ meta: { requestId: "r-2" } }).enqueueMany([[1, 1]]);
    expect((await env.client.getTask(many!.id))?.meta).toEqual({ requestId: "r-2" });
  });

  it("using({ transaction }) writes in the caller's transaction: nothing before COMMIT, the task after", async () => {
    await env.startWorker({ tasks: [multiply] });
    const c = await inTransaction();
    try {
      const handle = multiply.using({ client: env.client, transaction: c });
      const task = await handle.enqueue(4, 5);
      expect(task.status).toBe("PENDING");
      expect(await handle.getResult(task.id)).toBeNull(); // skiplock's own pool does not see it yet
      expect(await exists([task.id])).toBe(0);
      await c.query("COMMIT");
      const done = await handle.waitFor(task.id, { timeout: 20 });
      expect(done).toMatchObject({ status: "COMPLETED", result: { product: 20 } });
    } finally {
      await c.end();
    }
  });

  it("enqueueMany with using({ transaction }) writes the batch in the transaction; a rollback leaves nothing", async () => {
    await env.startWorker({ tasks: [multiply] });
    const createTasks = vi.spyOn(env.client, "createTasks");
    const c = await inTransaction();
    try {
      const handle = multiply.using({ client: env.client, transaction: c });
      const tasks = await handle.enqueueMany([
        [1, 2],
        [3, 4],
      ]);
      expect(createTasks).toHaveBeenCalledTimes(1);
      expect(createTasks.mock.calls[0]![1]).toEqual({ transaction: c });
      const ids = tasks.map((t) => t.id);
      expect(await exists(ids)).toBe(0);
      await c.query("COMMIT");
      const done = await Promise.all(ids.map((id) => handle.waitFor(id, { timeout: 20 })));
      expect(done.map((t) => t?.result?.product)).toEqual([2, 12]);

      await c.query("BEGIN");
      const rolledBack = await handle.enqueueMany([[5, 6]]);
      await c.query("ROLLBACK");
      expect(await exists(rolledBack.map((t) => t.id))).toBe(0);
    } finally {
      createTasks.mockRestore();
      await c.end();
    }
  });
});

// The dashboard's trigger endpoints (api/run, api/run-one, api/execute/:id) running real tasks on real Postgres,
// through the dashboard's fetch handler.
import { afterEach, describe, expect, it } from "vitest";
import {
  createDashboard,
  defineTask,
  PermanentError,
  taskContext,
  type Dashboard,
  type DashboardOptions,
} from "../src/index.js";
import { call, expectError, ORIGIN, TOKEN } from "./dashboard-fixture.js";
import { FIXTURE_TASKS, quiet, readLedger, taskRows, waitFor } from "./helpers.js";
import { schemaFixture } from "./schema-fixture.js";

const env = schemaFixture({ label: "dashboard_triggers" });

/** Adds a ledger row for the running attempt: one per execution. */
async function record(): Promise<void> {
  const ctx = taskContext();
  await env.pool.query(`INSERT INTO "${env.schema}".ledger (task_id, attempt, pid) VALUES ($1, $2, $3)`, [
    ctx.id,
    ctx.attempt,
    process.pid,
  ]);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });

const tasks = {
  add: async (a: number, b: number) => {
    await record();
    return a + b;
  },
  nap: async (ms: number) => {
    await record();
    await sleep(ms, taskContext().signal);
    return ms;
  },
  reporting: async () => {
    await taskContext().progress(0.5, "half way");
    return "reported";
  },
  flaky: defineTask(
    "flaky",
    async () => {
      await record();
      if (taskContext().attempt === 1) throw new Error("first attempt fails");
      return "ok";
    },
    { maxRetries: 2, backoff: () => 0 },
  ),
  permanent: defineTask(
    "permanent",
    async () => {
      await record();
      throw new PermanentError("bad input, never retry");
    },
    { maxRetries: 5 },
  ),
  hangs: async () => {
    await record();
    await sleep(60_000, taskContext().signal);
  },
  elsewhere: defineTask("elsewhere", async () => record(), { queue: "other" }),
};

const dashboards: Dashboard[] = [];
const make = (options: DashboardOptions = {}): Dashboard => {
  const d = createDashboard({
    client: env.client,
    token: TOKEN,
    logger: quiet,
    tasks,
    runOptions: { heartbeatInterval: 0.2, staleAfter: 1 },
    ...options,
  });
  dashboards.push(d);
  return d;
};

afterEach(async () => {
  await Promise.all(dashboards.splice(0).map((d) => d.close()));
  await env.pool.query(`DELETE FROM "${env.schema}".tasks`);
  await env.pool.query(`DELETE FROM "${env.schema}".ledger`);
});

const ledgerOf = async (id: string) => (await readLedger(env.pool, env.schema)).get(id) ?? [];

describe("POST api/run", () => {
  it("runs a due task to completion and answers with its outcome once it is stored", async () => {
    const d = make();
    const heard: string[] = [];
    d.events.on("task:started", ({ task }) => heard.push(`started ${task.id}`));
    d.events.on("task:completed", ({ task, result }) => heard.push(`completed ${task.id} ${JSON.stringify(result)}`));
    const t = await env.client.createTask("add", [2, 3]);
    const a = await call(d, "POST", "/api/run");
    expect(a.status).toBe(200);
    expect(a.body.tasks).toEqual([
      { id: t.id, name: "add", queue: "default", attempt: 1, outcome: "completed", duration: expect.any(Number) },
    ]);
    expect(a.body.stoppedBy).toBe("max"); // max defaults to 1
    expect(a.body.workerId).toMatch(/:run-[0-9a-f]{8}$/);
    const done = await env.client.getTask(t.id);
    expect(done).toMatchObject({ status: "COMPLETED", result: 5, retryCount: 0 });
    expect(done!.startedAt).not.toBeNull();
    expect(heard).toEqual([`started ${t.id}`, `completed ${t.id} 5`]);
    const row = (await taskRows(env.pool, env.schema, [t.id])).get(t.id)!;
    expect(row.worker_id).toBe(a.body.workerId);
    expect(await ledgerOf(t.id)).toHaveLength(1);
  });

  it("answers with nothing to do when nothing is due", async () => {
    const d = make();
    await env.client.createTask("add", [1, 1], { delay: 3600 });
    const a = await call(d, "POST", "/api/run?max=5");
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ tasks: [], swept: [], stoppedBy: "idle" });
  });

  it("retries a failed attempt under the task's policy, and a later call runs the retry", async () => {
    const d = make();
    const retrying: string[] = [];
    d.events.on("task:retrying", ({ task, type }) => retrying.push(`${task.id} ${type}`));
    const t = await env.client.createTask("flaky", [], { maxRetries: 2 });
    const first = await call(d, "POST", "/api/run");
    expect(first.body.tasks).toEqual([
      expect.objectContaining({
        id: t.id,
        outcome: "retrying",
        attempt: 1,
        error: "Error: first attempt fails",
        runAt: expect.any(String),
      }),
    ]);
    expect(retrying).toEqual([`${t.id} Error`]);
    expect(await env.client.getTask(t.id)).toMatchObject({ status: "PENDING", retryCount: 1 });
    // Its backoff says 0 s: due again at once, and the next call runs attempt 2.
    const second = await call(d, "POST", "/api/run");
    expect(second.body.tasks).toEqual([expect.objectContaining({ id: t.id, outcome: "completed", attempt: 2 })]);
    const done = await env.client.getTask(t.id);
    expect(done).toMatchObject({ status: "COMPLETED", result: "ok", retryCount: 1 });
    expect(done!.errors.map((e) => e.message)).toEqual(["first attempt fails"]);
    expect((await ledgerOf(t.id)).map((r) => r.attempt)).toEqual([1, 2]);
  });

  it("fails a PermanentError for good, whatever retries are left", async () => {
    const d = make();
    const t = await env.client.createTask("permanent", [], { maxRetries: 5 });
    const a = await call(d, "POST", "/api/run");
    expect(a.body.tasks).toEqual([
      expect.objectContaining({ id: t.id, outcome: "failed", error: "PermanentError: bad input, never retry" }),
    ]);
    expect(await env.client.getTask(t.id)).toMatchObject({ status: "FAILED", retryCount: 0, maxRetries: 5 });
  });

  it("fails an attempt at its timeout, its signal fired, and retries it as a worker would", async () => {
    const d = make({ runOptions: { heartbeatInterval: 0.2, staleAfter: 1, maxRetries: 1 } });
    const t = await env.client.createTask("hangs", [], { timeout: 0.3 });
    const a = await call(d, "POST", "/api/run");
    expect(a.body.tasks).toEqual([expect.objectContaining({ id: t.id, outcome: "retrying" })]);
    expect(a.body.tasks[0].error).toMatch(/^TaskTimeoutError: /);
    expect(a.body.tasks[0].duration).toBeGreaterThanOrEqual(0.3);
    // The runner's maxRetries (a worker's --retry) was written into the row at the claim.
    expect(await env.client.getTask(t.id)).toMatchObject({ status: "PENDING", retryCount: 1, maxRetries: 1 });
  });

  it("fails a task whose name has no handler here, as a worker does, and never loads code for it", async () => {
    const d = make();
    const t = await env.client.createTask("not.registered", [1]);
    const a = await call(d, "POST", "/api/run");
    expect(a.body.tasks).toEqual([
      expect.objectContaining({ id: t.id, name: "not.registered", outcome: "failed", duration: 0 }),
    ]);
    expect(a.body.tasks[0].error).toMatch(/^UnknownTaskError: unknown task "not.registered"/);
    expect(await env.client.getTask(t.id)).toMatchObject({ status: "FAILED", retryCount: 0 });
  });

  it("stores progress as a worker does", async () => {
    const d = make();
    const t = await env.client.createTask("reporting");
    const a = await call(d, "POST", "/api/run");
    expect(a.body.tasks).toEqual([expect.objectContaining({ id: t.id, outcome: "completed" })]);
    const done = await env.client.getTask(t.id);
    expect(done?.progress).toMatchObject({ fraction: 0.5, message: "half way" });
  });

  it("claims no more than max tasks", async () => {
    const d = make();
    const all = await env.client.createTasks(Array.from({ length: 5 }, (_, i) => ({ name: "add", args: [i, 0] })));
    const a = await call(d, "POST", "/api/run?max=3&concurrency=2");
    expect(a.body.stoppedBy).toBe("max");
    expect(a.body.tasks.map((r: { id: string }) => r.id).sort()).toEqual(
      all
        .slice(0, 3)
        .map((t) => t.id)
        .sort(),
    );
    const rest = await call(d, "POST", "/api/run?max=10");
    expect(rest.body).toMatchObject({ stoppedBy: "idle" });
    expect(rest.body.tasks).toHaveLength(2);
  });

  it("claims nothing once its budget is spent, and lets the tasks it claimed finish", async () => {
    const d = make();
    await env.client.createTasks(Array.from({ length: 3 }, () => ({ name: "nap", args: [400] })));
    const none = await call(d, "POST", "/api/run?max=10&budget=0");
    expect(none.body).toMatchObject({ tasks: [], stoppedBy: "budget" });
    const some = await call(d, "POST", "/api/run?max=10&budget=0.5");
    expect(some.body.stoppedBy).toBe("budget");
    // One at a time, 0.4 s each: a third claim could only come 0.8 s in, past the budget. What was claimed finished.
    expect(some.body.tasks.length).toBeLessThanOrEqual(2);
    for (const r of some.body.tasks) expect(r.outcome).toBe("completed");
    const counts = await env.client.countTasks();
    expect(counts.totals.PENDING).toBe(3 - some.body.tasks.length);
  });

  it("claims only from the queues asked for, or by default from default and its definitions' queues", async () => {
    const d = make();
    const onDefault = await env.client.createTask("add", [1, 2]);
    const onOther = await env.client.createTask("elsewhere", [], { queue: "other" });
    const onThird = await env.client.createTask("add", [3, 4], { queue: "third" });
    const other = await call(d, "POST", "/api/run?max=10&queue=other");
    expect(other.body.tasks.map((r: { id: string }) => r.id)).toEqual([onOther.id]);
    const both = await call(d, "POST", "/api/run?max=10&queue=third,default");
    expect(both.body.tasks.map((r: { id: string }) => r.id).sort()).toEqual([onDefault.id, onThird.id].sort());
    const t = await env.client.createTask("elsewhere", [], { queue: "other" });
    const byDefault = await call(d, "POST", "/api/run?max=10");
    expect(byDefault.body.tasks.map((r: { id: string }) => r.id)).toEqual([t.id]);
  });

  it("refuses bad parameters with a clear 400", async () => {
    const d = make();
    for (const query of [
      "max=0",
      "max=-1",
      "max=abc",
      "max=10001",
      "budget=901",
      "budget=soon",
      "concurrency=0",
      "concurrency=65",
    ]) {
      const a = await call(d, "POST", `/api/run?${query}`);
      expectError(a, 400, "INVALID_OPTION");
    }
    expectError(await call(d, "POST", "/api/run?queue=no%20spaces"), 400, "INVALID_NAME");
  });

  it("never runs a task twice when two calls claim at once (each under its own lease)", async () => {
    const d = make();
    const all = await env.client.createTasks(Array.from({ length: 20 }, (_, i) => ({ name: "add", args: [i, i] })));
    const [a, b] = await Promise.all([
      call(d, "POST", "/api/run?max=20&concurrency=4"),
      call(make(), "POST", "/api/run?max=20&concurrency=4"),
    ]);
    expect(a.body.workerId).not.toBe(b.body.workerId);
    const ran = [...a.body.tasks, ...b.body.tasks].map((r: { id: string }) => r.id);
    expect(ran.sort()).toEqual(all.map((t) => t.id).sort());
    const ledger = await readLedger(env.pool, env.schema);
    for (const t of all) expect(ledger.get(t.id)).toHaveLength(1);
    for (const row of (await taskRows(env.pool, env.schema)).values()) expect(row.status).toBe("COMPLETED");
  });
});

describe("thread isolation", () => {
  it("runs handlers from a tasks module in a worker thread, as a worker with isolation: thread does", async () => {
    const d = make({
      tasks: undefined,
      tasksModule: FIXTURE_TASKS,
      runOptions: { heartbeatInterval: 0.2, staleAfter: 1, isolation: "thread" },
    });
    const t = await env.client.createTask("multiply", [6, 7]);
    const a = await call(d, "POST", "/api/run");
    expect(a.body.tasks).toEqual([expect.objectContaining({ id: t.id, outcome: "completed" })]);
    expect(await env.client.getTask(t.id)).toMatchObject({ status: "COMPLETED", result: 42 });
  });
});

describe("POST api/run-one", () => {
  it("runs one due task, highest priority first", async () => {
    const d = make();
    await env.client.createTask("add", [1, 1]);
    const urgent = await env.client.createTask("add", [2, 2], { priority: 10 });
    const a = await call(d, "POST", "/api/run-one");
    expect(a.body.tasks).toEqual([expect.objectContaining({ id: urgent.id, outcome: "completed" })]);
    expect((await env.client.countTasks()).totals.PENDING).toBe(1);
  });
});

describe("POST api/execute/:id", () => {
  it("runs a pending task now, even one not due yet", async () => {
    const d = make();
    const later = await env.client.createTask("add", [20, 22], { delay: 3600 });
    const due = await env.client.createTask("add", [1, 1], { priority: 100 });
    const a = await call(d, "POST", `/api/execute/${later.id}`);
    expect(a.status).toBe(200);
    expect(a.body.tasks).toEqual([expect.objectContaining({ id: later.id, outcome: "completed", attempt: 1 })]);
    expect(await env.client.getTask(later.id)).toMatchObject({ status: "COMPLETED", result: 42 });
    expect((await env.client.getTask(due.id))?.status).toBe("PENDING");
  });

  it("refuses a running, a finished or a missing task, and a task on another queue than asked", async () => {
    const d = make();
    const running = await env.client.createTask("nap", [1500]);
    const first = call(d, "POST", `/api/execute/${running.id}`);
    await waitForLedger(running.id);
    expectError(await call(d, "POST", `/api/execute/${running.id}`), 409, "TASK_STATE");
    expect((await first).body.tasks).toEqual([expect.objectContaining({ id: running.id, outcome: "completed" })]);
    const finished = await call(d, "POST", `/api/execute/${running.id}`);
    expectError(finished, 409, "TASK_STATE");
    expect(finished.body.error.message).toContain("it is COMPLETED, expected PENDING");
    const cancelled = await env.client.createTask("add", [1, 1]);
    await env.client.cancelTask(cancelled.id);
    expectError(await call(d, "POST", `/api/execute/${cancelled.id}`), 409, "TASK_STATE");
    expectError(await call(d, "POST", "/api/execute/999999999"), 404, "TASK_NOT_FOUND");
    expectError(await call(d, "POST", "/api/execute/abc"), 400, "INVALID_TASK_ID");
    const pending = await env.client.createTask("add", [1, 1]);
    expectError(await call(d, "POST", `/api/execute/${pending.id}?queue=other`), 400, "INVALID_OPTION");
    expect((await env.client.getTask(pending.id))?.status).toBe("PENDING");
    expect(await ledgerOf(pending.id)).toEqual([]);
  });
});

describe("who may trigger", () => {
  async function signIn(d: Dashboard): Promise<{ cookie: string; csrf: string }> {
    const a = await call(d, "POST", "/api/session", { token: TOKEN }, { origin: ORIGIN });
    return { cookie: a.headers.get("set-cookie")!.split(";")[0]!, csrf: a.body.csrfToken };
  }

  it("refuses without credentials, with a wrong token, without CSRF, from a foreign Origin, and when read-only", async () => {
    const d = make();
    const t = await env.client.createTask("add", [1, 1]);
    const { cookie, csrf } = await signIn(d);
    for (const path of ["/api/run", "/api/run-one", `/api/execute/${t.id}`]) {
      expectError(await call(d, "POST", path, undefined, {}), 401, "UNAUTHORIZED");
      expectError(
        await call(d, "POST", path, undefined, { authorization: "Bearer wrong-token-0123456789" }),
        401,
        "UNAUTHORIZED",
      );
      expectError(await call(d, "POST", path, undefined, { cookie, origin: ORIGIN }), 403, "CSRF_TOKEN");
      expectError(
        await call(d, "POST", path, undefined, { cookie, origin: "https://evil.example", "x-csrf-token": csrf }),
        403,
        "FOREIGN_ORIGIN",
      );
      expectError(await call(make({ readOnly: true }), "POST", path), 403, "READ_ONLY");
      // GET is not how a run is triggered.
      expectError(await call(d, "GET", path), 404, "NOT_FOUND");
    }
    expect((await env.client.getTask(t.id))?.status).toBe("PENDING");
    expect(await ledgerOf(t.id)).toEqual([]);
    // Signed in by cookie, from the dashboard's own origin, with the CSRF token: it runs.
    const ok = await call(d, "POST", "/api/run-one", undefined, { cookie, origin: ORIGIN, "x-csrf-token": csrf });
    expect(ok.body.tasks).toEqual([expect.objectContaining({ id: t.id, outcome: "completed" })]);
  });

  it("has no trigger endpoints without tasks", async () => {
    const d = createDashboard({ client: env.client, token: TOKEN, logger: quiet });
    dashboards.push(d);
    const t = await env.client.createTask("add", [1, 1]);
    for (const path of ["/api/run", "/api/run-one", `/api/execute/${t.id}`]) {
      expectError(await call(d, "POST", path), 404, "NOT_FOUND");
    }
    expect((await env.client.getTask(t.id))?.status).toBe("PENDING");
  });
});

/** Waits until task `id` has started an attempt (its handler wrote a ledger row). */
const waitForLedger = (id: string) =>
  waitFor(`task ${id} to start`, async () => (await ledgerOf(id)).length > 0, 10_000, 20);

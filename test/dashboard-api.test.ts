import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import express from "express";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createDashboard, type Dashboard } from "../src/index.js";
import { call, expectError, finishTask, TOKEN } from "./dashboard-fixture.js";
import { quiet, runCli, spawnProc, CLI, DATABASE_URL, freePort, stopProc } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";

const env = workerFixture({
  label: "dashboard_api",
  workerDefaults: { heartbeatInterval: 0.2, staleAfter: 2, pollInterval: 0.2 },
  deleteTasksAfterEach: true,
});
let dashboard: Dashboard;
beforeEach(() => {
  dashboard = createDashboard({ client: env.client, token: TOKEN, logger: quiet });
});

const enqueue = (name = "job", args: unknown[] = [], options = {}) => env.client.createTask(name, args, options);

describe("GET api/stats", () => {
  it("counts per queue and status, finished per minute, the oldest due task per queue and live workers", async () => {
    const worker = await env.startWorker({ tasks: { noop: () => null }, queues: ["other"] });
    await enqueue("job", [], { queue: "mail" });
    const done = await enqueue("job", [], { queue: "mail" });
    const failed = await enqueue("job");
    await finishTask(env, done.id, "COMPLETED");
    await finishTask(env, failed.id, "FAILED");
    const a = await call(dashboard, "GET", "/api/stats");
    expect(a.status).toBe(200);
    expect(a.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(a.body.counts.queues.mail).toMatchObject({ PENDING: 1, COMPLETED: 1 });
    expect(a.body.counts.queues.default).toMatchObject({ FAILED: 1 });
    expect(a.body.perMinute).toHaveLength(60);
    const last = a.body.perMinute.at(-1);
    expect({ completed: last.completed, failed: last.failed }).toEqual({ completed: 1, failed: 1 });
    expect(Object.keys(a.body.oldestDue)).toEqual(["mail"]);
    expect(a.body.oldestDue.mail).toBeGreaterThanOrEqual(0);
    expect(a.body.liveWorkers).toBe(1);
    expect(a.body.readOnly).toBe(false);
    await worker.stop();
  });
});

describe("GET api/tasks and api/tasks/:id", () => {
  it("lists newest first with filters, pages by keyset, and refuses bad filters and page sizes", async () => {
    const tasks = [];
    for (let i = 0; i < 5; i++) tasks.push(await enqueue(i % 2 ? "odd" : "even", [i], { queue: i < 3 ? "a" : "b" }));
    await finishTask(env, tasks[0]!.id, "FAILED");
    const first = await call(dashboard, "GET", "/api/tasks?limit=2");
    expect(first.status).toBe(200);
    expect(first.body.tasks.map((t: { id: string }) => t.id)).toEqual([tasks[4]!.id, tasks[3]!.id]);
    const second = await call(dashboard, "GET", `/api/tasks?limit=2&after=${first.body.next}`);
    expect(second.body.tasks.map((t: { id: string }) => t.id)).toEqual([tasks[2]!.id, tasks[1]!.id]);
    const filtered = await call(dashboard, "GET", "/api/tasks?queue=a&name=even");
    expect(filtered.body.tasks.map((t: { id: string }) => t.id)).toEqual([tasks[2]!.id, tasks[0]!.id]);
    const statuses = await call(dashboard, "GET", "/api/tasks?status=FAILED,CANCELLED");
    expect(statuses.body).toMatchObject({ tasks: [{ id: tasks[0]!.id, status: "FAILED" }], next: null });
    expectError(await call(dashboard, "GET", "/api/tasks?status=DONE"), 400, "INVALID_OPTION");
    expectError(await call(dashboard, "GET", "/api/tasks?limit=0"), 400, "INVALID_OPTION");
    expectError(await call(dashboard, "GET", "/api/tasks?limit=5000"), 400, "INVALID_OPTION");
    expectError(await call(dashboard, "GET", "/api/tasks?limit=ten"), 400, "INVALID_OPTION");
    expectError(await call(dashboard, "GET", "/api/tasks?after=x"), 400, "INVALID_TASK_ID");
    expectError(await call(dashboard, "GET", "/api/tasks?queue=bad%20queue"), 400, "INVALID_NAME");
  });

  it("gives one task, 404 for an unknown id and 400 for a malformed one", async () => {
    const t = await enqueue("job", [{ a: "<script>" }]);
    const a = await call(dashboard, "GET", `/api/tasks/${t.id}`);
    expect(a.status).toBe(200);
    expect(a.body.task).toMatchObject({ id: t.id, name: "job", args: [{ a: "<script>" }], status: "PENDING" });
    expectError(await call(dashboard, "GET", "/api/tasks/999999999"), 404, "TASK_NOT_FOUND");
    expectError(await call(dashboard, "GET", "/api/tasks/abc"), 400, "INVALID_TASK_ID");
  });
});

describe("POST api/tasks", () => {
  it("enqueues with options, runAt as an ISO date", async () => {
    const runAt = new Date(Date.now() + 3600_000);
    const a = await call(dashboard, "POST", "/api/tasks", {
      name: "email.send",
      args: ["a@example.com"],
      options: { queue: "mail", priority: 5, maxRetries: 2, runAt: runAt.toISOString(), meta: { by: "ops" } },
    });
    expect(a.status).toBe(201);
    expect(a.body.task).toMatchObject({
      name: "email.send",
      queue: "mail",
      priority: 5,
      maxRetries: 2,
      meta: { by: "ops" },
    });
    expect(new Date(a.body.task.runAt).getTime()).toBe(runAt.getTime());
    expect((await env.client.getTask(a.body.task.id))?.args).toEqual(["a@example.com"]);
  });

  it("refuses bad input with the client's typed error code, and bodies that are not JSON objects or too large", async () => {
    expectError(await call(dashboard, "POST", "/api/tasks", { args: [] }), 400, "BAD_REQUEST");
    expectError(await call(dashboard, "POST", "/api/tasks", { name: "bad name!" }), 400, "INVALID_NAME");
    expectError(await call(dashboard, "POST", "/api/tasks", { name: "x", args: 3 }), 400, "BAD_REQUEST");
    expectError(
      await call(dashboard, "POST", "/api/tasks", { name: "x", options: { bogus: 1 } }),
      400,
      "INVALID_OPTION",
    );
    expectError(
      await call(dashboard, "POST", "/api/tasks", { name: "x", options: { priority: 1000 } }),
      400,
      "INVALID_OPTION",
    );
    expectError(
      await call(dashboard, "POST", "/api/tasks", { name: "x", options: { transaction: {} } }),
      400,
      "BAD_REQUEST",
    );
    expectError(
      await call(dashboard, "POST", "/api/tasks", { name: "x", options: { runAt: "soon" } }),
      400,
      "BAD_REQUEST",
    );
    expectError(await call(dashboard, "POST", "/api/tasks", "{not json"), 400, "BAD_REQUEST");
    expectError(await call(dashboard, "POST", "/api/tasks", "[1]"), 400, "BAD_REQUEST");
    const form = await call(dashboard, "POST", "/api/tasks", "name=x", {
      authorization: `Bearer ${TOKEN}`,
      "content-type": "application/x-www-form-urlencoded",
    });
    expectError(form, 415, "UNSUPPORTED_MEDIA_TYPE");
    const big = { name: "x", args: ["a".repeat(1024 * 1024)] };
    expectError(await call(dashboard, "POST", "/api/tasks", big), 413, "BODY_TOO_LARGE");
    expect((await env.client.listTasks()).tasks).toEqual([]);
  });
});

describe("task actions", () => {
  it("retry, cancel, run-now and delete act on a task in the state they take", async () => {
    const failed = await enqueue();
    await finishTask(env, failed.id, "FAILED");
    const retried = await call(dashboard, "POST", `/api/tasks/${failed.id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body.task).toMatchObject({ id: failed.id, status: "PENDING" });

    const later = await enqueue("job", [], { delay: 3600 });
    const now = await call(dashboard, "POST", `/api/tasks/${later.id}/run-now`);
    expect(now.status).toBe(200);
    expect(new Date(now.body.task.runAt).getTime()).toBeLessThan(new Date(later.runAt).getTime());

    const cancelled = await call(dashboard, "POST", `/api/tasks/${later.id}/cancel`);
    expect(cancelled.body.task).toMatchObject({ id: later.id, status: "CANCELLED" });
    const deleted = await call(dashboard, "DELETE", `/api/tasks/${later.id}`);
    expect(deleted.body.task).toMatchObject({ id: later.id, status: "CANCELLED" });
    expect(await env.client.getTask(later.id)).toBeNull();
  });

  it("refuses with 409 an action on a task whose state changed since it was shown, and changes nothing", async () => {
    const t = await enqueue();
    // Shown as PENDING; someone cancels it meanwhile: run-now is refused, not applied to the cancelled task.
    await env.client.cancelTask(t.id);
    const runNow = await call(dashboard, "POST", `/api/tasks/${t.id}/run-now`);
    expectError(runNow, 409, "TASK_STATE");
    expect(runNow.body.error.message).toContain("CANCELLED");

    const done = await enqueue();
    await finishTask(env, done.id, "COMPLETED");
    expectError(await call(dashboard, "POST", `/api/tasks/${done.id}/retry`), 409, "TASK_STATE");
    expectError(await call(dashboard, "POST", `/api/tasks/${done.id}/cancel`), 409, "TASK_STATE");
    expectError(await call(dashboard, "POST", `/api/tasks/${done.id}/run-now`), 409, "TASK_STATE");
    expect((await env.client.getTask(done.id))?.status).toBe("COMPLETED");

    const pending = await enqueue();
    expectError(await call(dashboard, "DELETE", `/api/tasks/${pending.id}`), 409, "TASK_STATE");
    // Two retries of one failed task: the second finds it PENDING already.
    await finishTask(env, pending.id, "FAILED");
    const [first, second] = await Promise.all([
      call(dashboard, "POST", `/api/tasks/${pending.id}/retry`),
      call(dashboard, "POST", `/api/tasks/${pending.id}/retry`),
    ]);
    expect([first.status, second.status].sort()).toEqual([200, 409]);
  });

  it("answers 404 for an unknown task and 400 for a malformed id", async () => {
    for (const action of ["retry", "cancel", "run-now"]) {
      expectError(await call(dashboard, "POST", `/api/tasks/424242424/${action}`), 404, "TASK_NOT_FOUND");
      expectError(await call(dashboard, "POST", `/api/tasks/-1/${action}`), 400, "INVALID_TASK_ID");
    }
    expectError(await call(dashboard, "DELETE", "/api/tasks/424242424"), 404, "TASK_NOT_FOUND");
  });
});

describe("POST api/tasks/bulk", () => {
  it("acts on each id and reports each result and the counts", async () => {
    const a = await enqueue();
    const b = await enqueue();
    const done = await enqueue();
    await finishTask(env, done.id, "COMPLETED");
    const r = await call(dashboard, "POST", "/api/tasks/bulk", {
      action: "cancel",
      ids: [a.id, done.id, "424242424", b.id],
    });
    expect(r.status).toBe(200);
    expect(r.body.results).toMatchObject([
      { id: a.id, ok: true, status: "CANCELLED" },
      { id: done.id, ok: false, error: { code: "TASK_STATE" } },
      { id: "424242424", ok: false, error: { code: "TASK_NOT_FOUND" } },
      { id: b.id, ok: true, status: "CANCELLED" },
    ]);
    expect(r.body.counts).toEqual({ ok: 2, refused: 2, byCode: { TASK_STATE: 1, TASK_NOT_FOUND: 1 } });
    const del = await call(dashboard, "POST", "/api/tasks/bulk", { action: "delete", ids: [a.id, b.id, done.id] });
    expect(del.body.counts).toEqual({ ok: 3, refused: 0, byCode: {} });
  });

  it("refuses an unknown action, no ids, too many ids or a malformed id, acting on none", async () => {
    const t = await enqueue();
    expectError(
      await call(dashboard, "POST", "/api/tasks/bulk", { action: "explode", ids: [t.id] }),
      400,
      "BAD_REQUEST",
    );
    expectError(await call(dashboard, "POST", "/api/tasks/bulk", { action: "cancel", ids: [] }), 400, "BAD_REQUEST");
    const many = Array.from({ length: 1001 }, (_, i) => String(i + 1));
    expectError(await call(dashboard, "POST", "/api/tasks/bulk", { action: "cancel", ids: many }), 400, "BAD_REQUEST");
    const bad = await call(dashboard, "POST", "/api/tasks/bulk", { action: "cancel", ids: [t.id, "x"] });
    expectError(bad, 400, "INVALID_TASK_ID");
    expect((await env.client.getTask(t.id))?.status).toBe("PENDING");
  });
});

describe("POST api/purge", () => {
  it("counts with dryRun, then deletes, finished tasks older than the days given", async () => {
    const old = await enqueue();
    await finishTask(env, old.id, "COMPLETED");
    await env.pool.query(`UPDATE "${env.schema}".tasks SET finished_at = now() - interval '3 days' WHERE id = $1`, [
      old.id,
    ]);
    const recent = await enqueue();
    await finishTask(env, recent.id, "COMPLETED");
    const dry = await call(dashboard, "POST", "/api/purge", { olderThanDays: 2, dryRun: true });
    expect(dry.body).toMatchObject({ deleted: 1, dryRun: true });
    expect(await env.client.getTask(old.id)).not.toBeNull();
    const real = await call(dashboard, "POST", "/api/purge", { olderThanDays: 2 });
    expect(real.body).toMatchObject({ deleted: 1, dryRun: false });
    expect(await env.client.getTask(old.id)).toBeNull();
    expect(await env.client.getTask(recent.id)).not.toBeNull();
    expectError(await call(dashboard, "POST", "/api/purge", {}), 400, "INVALID_OPTION");
    expectError(
      await call(dashboard, "POST", "/api/purge", { olderThanDays: 1, dryRun: "yes" }),
      400,
      "INVALID_OPTION",
    );
    expectError(
      await call(dashboard, "POST", "/api/purge", { olderThanDays: 1, statuses: ["PENDING"] }),
      400,
      "INVALID_OPTION",
    );
  });
});

describe("GET api/workers and the schedules", () => {
  it("lists the registry and steers schedules; an unknown schedule is 404", async () => {
    const worker = await env.startWorker({
      tasks: { report: () => "ok" },
      schedules: [{ name: "nightly", cron: "0 3 * * *", task: "report" }],
    });
    const workers = await call(dashboard, "GET", "/api/workers");
    // Live first; a worker of an earlier test may follow, stopped.
    expect(workers.body.workers[0]).toMatchObject({ id: worker.id, status: "live", schedules: ["nightly"] });
    const list = await call(dashboard, "GET", "/api/schedules");
    expect(list.body.schedules).toMatchObject([{ name: "nightly", paused: false }]);
    expect((await call(dashboard, "POST", "/api/schedules/nightly/pause")).body.schedule.paused).toBe(true);
    expect((await call(dashboard, "POST", "/api/schedules/nightly/resume")).body.schedule.paused).toBe(false);
    const trigger = await call(dashboard, "POST", "/api/schedules/nightly/trigger");
    expect(trigger.status).toBe(201);
    expect(trigger.body.task).toMatchObject({ name: "report" });
    await env.finished(trigger.body.task);
    for (const action of ["pause", "resume", "trigger"]) {
      expectError(await call(dashboard, "POST", `/api/schedules/nope/${action}`), 404, "SCHEDULE_NOT_FOUND");
    }
  });
});

describe("routes", () => {
  it("answers an unknown route or method with a JSON 404", async () => {
    expectError(await call(dashboard, "GET", "/api/nothing"), 404, "NOT_FOUND");
    expectError(await call(dashboard, "PUT", "/api/tasks/1"), 404, "NOT_FOUND");
  });
});

describe("mounting", () => {
  let server: Server | null = null;
  afterEach(async () => {
    server?.closeAllConnections();
    if (server) await new Promise((r) => server!.close(r));
    server = null;
  });
  const listen = async (handler: Parameters<typeof createServer>[1]): Promise<string> => {
    server = createServer(handler);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const auth = { authorization: `Bearer ${TOKEN}` };

  it("serves under a base path in a plain http server", async () => {
    const d = createDashboard({ client: env.client, token: TOKEN, basePath: "/admin/", logger: quiet });
    const url = await listen((req, res) => {
      if (req.url?.startsWith("/admin")) return d.listener(req, res);
      res.end("app");
    });
    const t = await enqueue();
    const r = await fetch(`${url}/admin/api/tasks/${t.id}`, { headers: auth });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { task: { id: string } }).task.id).toBe(t.id);
    const post = await fetch(`${url}/admin/api/tasks/${t.id}/cancel`, { method: "POST", headers: auth });
    expect(post.status).toBe(200);
    expect(await (await fetch(`${url}/other`)).text()).toBe("app");
    expect((await fetch(`${url}/api/stats`, { headers: auth })).status).toBe(200); // the app's "app"
  });

  it("mounts in Express under a path, before the app's body parser, and lets other routes through", async () => {
    const d = createDashboard({ client: env.client, token: TOKEN, basePath: "/ops", logger: quiet });
    const app = express();
    app.use("/ops", d.listener);
    app.use(express.json());
    app.post("/echo", (req, res) => void res.json(req.body));
    const url = await listen(app);
    const created = await fetch(`${url}/ops/api/tasks`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ name: "job", args: [1] }),
    });
    expect(created.status).toBe(201);
    const stats = await fetch(`${url}/ops/api/stats`, { headers: auth });
    expect(stats.headers.get("x-frame-options")).toBe("DENY");
    const echo = await fetch(`${url}/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ hi: 1 }),
    });
    expect(await echo.json()).toEqual({ hi: 1 });
  });
});

describe("the examples", () => {
  for (const [file, base] of [
    ["dashboard-http.js", "/admin"],
    ["dashboard-express.js", "/ops"],
  ] as const) {
    it(`examples/${file} serves the API under ${base}`, async () => {
      const p = spawnProc(process.execPath, [fileURLToPath(new URL(`../examples/${file}`, import.meta.url))], {
        DATABASE_URL,
        SKIPLOCK_SCHEMA: env.schema,
        SKIPLOCK_DASHBOARD_TOKEN: TOKEN,
        PORT: "0",
      });
      try {
        await p.waitForOutput(/listening on http:\/\/127\.0\.0\.1:\d+/);
        const url = /(http:\/\/127\.0\.0\.1:\d+)/.exec(p.output())![1]!;
        const t = await enqueue();
        const r = await fetch(`${url}${base}/api/tasks/${t.id}/cancel`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        expect(r.status).toBe(200);
        expect(await (await fetch(`${url}/`)).text()).toBe("the app\n");
        expect((await fetch(`${url}${base}/api/stats`)).status).toBe(401);
      } finally {
        await stopProc(p);
      }
    });
  }
});

describe("skiplock dashboard", () => {
  it("prints the URL it serves and answers there", async () => {
    const port = await freePort();
    const p = spawnProc(process.execPath, [CLI, "dashboard", "--port", String(port), "--base-path", "/ops"], {
      DATABASE_URL,
      SKIPLOCK_SCHEMA: env.schema,
      SKIPLOCK_DASHBOARD_TOKEN: TOKEN,
    });
    try {
      await p.waitForOutput(new RegExp(`http://127\\.0\\.0\\.1:${port}/ops/`));
      const r = await fetch(`http://127.0.0.1:${port}/ops/api/workers`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(r.status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/ops/api/workers`)).status).toBe(401);
    } finally {
      await stopProc(p);
    }
    expect(p.output()).not.toContain(TOKEN);
  });

  it("refuses a non-loopback --host without a token, in one line", async () => {
    const r = await runCli(["dashboard", "--host", "0.0.0.0"], {
      SKIPLOCK_SCHEMA: env.schema,
      SKIPLOCK_DASHBOARD_TOKEN: "",
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/refusing to serve on 0\.0\.0\.0 without a token/);
  });
});

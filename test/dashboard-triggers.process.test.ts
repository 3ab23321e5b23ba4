// The trigger endpoints served by `skiplock dashboard --tasks` in a child process: a request process killed in the
// middle of a task leaves a row the sweep takes back, as a crashed worker's; and the command's own checks.
import { afterEach, describe, expect, it } from "vitest";
import { createDashboard, type Dashboard } from "../src/index.js";
import { call, TOKEN } from "./dashboard-fixture.js";
import {
  CLI,
  FIXTURE_TASKS,
  freePort,
  quiet,
  readLedger,
  runCli,
  spawnProc,
  stopProc,
  taskRows,
  waitFor,
  type Proc,
} from "./helpers.js";
import { schemaFixture } from "./schema-fixture.js";

const env = schemaFixture({ label: "dashboard_triggers_proc" });
const FAST = ["--heartbeat-interval", "0.2", "--stale-after", "1.5"];

const procs: Proc[] = [];
const dashboards: Dashboard[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => stopProc(p, "SIGKILL")));
  await Promise.all(dashboards.splice(0).map((d) => d.close()));
});

const childEnv = () => ({
  DATABASE_URL: env.databaseUrl,
  REDIS_URL: env.redisUrl,
  SKIPLOCK_SCHEMA: env.schema,
  SKIPLOCK_DASHBOARD_TOKEN: TOKEN,
});

/** `skiplock dashboard --tasks <fixture tasks>` on a free port; resolves once it listens. */
async function serve(extra: string[] = []): Promise<{ proc: Proc; url: string }> {
  const port = await freePort();
  const proc = spawnProc(
    process.execPath,
    [CLI, "dashboard", "--port", String(port), "--tasks", FIXTURE_TASKS, ...FAST, ...extra],
    childEnv(),
  );
  procs.push(proc);
  await proc.waitForOutput(/skiplock dashboard: http:\/\//);
  return { proc, url: `http://127.0.0.1:${port}` };
}

const post = (url: string) => fetch(url, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } });

describe("skiplock dashboard --tasks", () => {
  it("runs tasks through api/run", async () => {
    const { url } = await serve();
    const t = await env.client.createTask("multiply", [6, 7]);
    const res = await post(`${url}/api/run?max=5`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { tasks: unknown[]; stoppedBy: string };
    expect(body.tasks).toEqual([expect.objectContaining({ id: t.id, name: "multiply", outcome: "completed" })]);
    expect(await env.client.getTask(t.id)).toMatchObject({ status: "COMPLETED", result: 42 });
  });

  it("leaves a task whose request process was killed to the sweep, which requeues it for a later run", async () => {
    const { proc, url } = await serve(["--retry", "1"]);
    const t = await env.client.createTask("sleep", [60_000]);
    // The answer never comes: the process dies first.
    const request = post(`${url}/api/execute/${t.id}`).catch((err: unknown) => err);
    await waitFor("the task to start in the dashboard process", async () =>
      (await readLedger(env.pool, env.schema)).has(t.id),
    );
    proc.child.kill("SIGKILL");
    expect(await proc.exited).toEqual({ code: null, signal: "SIGKILL" });
    expect(await request).toBeInstanceOf(Error);
    const row = (await taskRows(env.pool, env.schema, [t.id])).get(t.id)!;
    expect(row).toMatchObject({ status: "PROGRESS", attempt: 1, max_retries: 1 });
    expect(row.worker_id).toContain(`:${proc.child.pid}:run-`);

    // Another host's run call (same stale-after) sweeps first, then claims the requeued task and runs it.
    const d = createDashboard({
      client: env.client,
      token: TOKEN,
      logger: quiet,
      tasks: { sleep: async () => "after the crash" },
      runOptions: { heartbeatInterval: 0.2, staleAfter: 1.5 },
    });
    dashboards.push(d);
    const swept: string[] = [];
    d.events.on("task:swept", (s) => swept.push(`${s.id} ${s.outcome} ${s.attempt}`));
    const answer = await waitFor(
      "a run call to sweep the task back and run it",
      async () => {
        const a = await call(d, "POST", "/api/run?max=5");
        expect(a.status).toBe(200);
        return a.body.tasks.length > 0 ? a.body : null;
      },
      20_000,
      200,
    );
    expect(answer.swept).toEqual([{ id: t.id, name: "sleep", queue: "default", status: "PENDING" }]);
    expect(swept).toEqual([`${t.id} requeued 1`]);
    expect(answer.tasks).toEqual([expect.objectContaining({ id: t.id, outcome: "completed", attempt: 2 })]);
    const done = await env.client.getTask(t.id);
    expect(done).toMatchObject({ status: "COMPLETED", result: "after the crash", retryCount: 1 });
    expect(done!.errors.map((e) => e.type)).toEqual(["WorkerLostError"]);
  });

  it("heartbeats a task while its request runs it: a sweep meanwhile leaves it alone", async () => {
    const { url } = await serve();
    const t = await env.client.createTask("sleep", [2500]);
    const request = post(`${url}/api/execute/${t.id}`);
    await waitFor("the task to start", async () => (await readLedger(env.pool, env.schema)).has(t.id));
    const claimedAt = (await taskRows(env.pool, env.schema, [t.id])).get(t.id)!.heartbeat_at as Date;
    // Past stale-after (1.5 s) since the claim, the row has been beaten, and a sweep finds nothing stale.
    await waitFor(
      "a heartbeat more than 1.5 s after the claim",
      async () => {
        const row = (await taskRows(env.pool, env.schema, [t.id])).get(t.id)!;
        return row.status === "PROGRESS" && row.heartbeat_at.getTime() - claimedAt.getTime() > 1500;
      },
      10_000,
      100,
    );
    const d = createDashboard({
      client: env.client,
      token: TOKEN,
      logger: quiet,
      tasks: { other: () => null },
      runOptions: { heartbeatInterval: 0.2, staleAfter: 1.5 },
    });
    dashboards.push(d);
    expect((await call(d, "POST", "/api/run")).body).toMatchObject({ swept: [], tasks: [] });
    const res = await request;
    expect(((await res.json()) as { tasks: unknown[] }).tasks).toEqual([
      expect.objectContaining({ id: t.id, outcome: "completed", attempt: 1 }),
    ]);
  });

  it("refuses a tasks module that does not load, and bad settings, with one line and a non-zero exit", async () => {
    const missing = await runCli(
      ["dashboard", "--port", "0", "--tasks", "test/fixtures/no-such-module.js"],
      childEnv(),
    );
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/cannot load tasks module/);
    const stale = await runCli(
      ["dashboard", "--port", "0", "--tasks", FIXTURE_TASKS, "--heartbeat-interval", "5", "--stale-after", "6"],
      childEnv(),
    );
    expect(stale.code).not.toBe(0);
    expect(stale.stderr).toMatch(/invalid option --stale-after: must be at least twice --heartbeat-interval/);
  });
});

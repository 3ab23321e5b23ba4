// The dashboard's answers to requests that try its edges: a spoofed Host from another machine, streams nobody
// reads, actions on a task that changed since the page showed it, redirects out of the base path, and the trigger
// endpoints' limits.
import { Agent, request as httpRequest, createServer, type Server } from "node:http";
import { networkInterfaces } from "node:os";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createDashboard, InvalidOptionError, SkiplockClient, TaskStateError, type Dashboard } from "../src/index.js";
import { clientInternals } from "../src/client.js";
import { MAX_TRIGGER_CALLS } from "../src/dashboard/trigger-routes.js";
import { DashboardEvents, MAX_STREAMS } from "../src/dashboard/events.js";
import { guard, isLoopbackAddress, markPeer } from "../src/dashboard/guard.js";
import { call, expectError, finishTask, ORIGIN, TOKEN } from "./dashboard-fixture.js";
import { DATABASE_URL, quiet, waitFor } from "./helpers.js";
import { PrivatePgBouncer } from "./private-pgbouncer.js";
import { schemaFixture } from "./schema-fixture.js";
import { missingTools } from "./system-tools.js";

const env = schemaFixture({ label: "dashboard_review" });

/** The options every heartbeat is built with (trigger calls build one each), recorded by a subclass. */
const heartbeats = vi.hoisted(() => [] as { pgbouncer?: boolean }[]);
vi.mock("../src/worker/heartbeat.js", async (original) => {
  const m = await original<typeof import("../src/worker/heartbeat.js")>();
  class RecordedHeartbeat extends m.Heartbeat {
    constructor(options: ConstructorParameters<typeof m.Heartbeat>[0]) {
      heartbeats.push(options);
      super(options);
    }
  }
  return { ...m, Heartbeat: RecordedHeartbeat };
});

/** When set, the next claim by id runs this first and then fails as a row moved under it would (40001). */
const beforeMovedClaim = vi.hoisted(() => ({ run: null as null | (() => Promise<void>) }));
vi.mock("../src/sql/claim-by-id.js", async (original) => {
  const m = await original<typeof import("../src/sql/claim-by-id.js")>();
  return {
    ...m,
    claimTaskById: async (...args: Parameters<typeof m.claimTaskById>) => {
      const run = beforeMovedClaim.run;
      if (run === null) return m.claimTaskById(...args);
      beforeMovedClaim.run = null;
      await run();
      throw Object.assign(
        new Error("tuple to be locked was already moved to another partition due to concurrent update"),
        {
          code: "40001",
        },
      );
    },
  };
});

let server: Server | null = null;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = null;
});

/** Serves `handler` on every interface; resolves to the port. */
async function listenAll(handler: Parameters<typeof createServer>[1]): Promise<number> {
  server = createServer(handler);
  await new Promise<void>((resolve) => server!.listen(0, "0.0.0.0", resolve));
  return (server.address() as { port: number }).port;
}

/** A GET to `address`:`port` with its own Host header: the status and body. */
function getWithHost(
  address: string,
  port: number,
  host: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<[number, string]> {
  return new Promise((resolve, reject) => {
    const rq = httpRequest({ host: address, port, path, headers: { host, ...headers } }, (r) => {
      let body = "";
      r.on("data", (c: Buffer) => (body += c.toString()));
      r.on("end", () => resolve([r.statusCode!, body]));
    });
    rq.on("error", reject);
    rq.end();
  });
}

/** This machine's first IPv4 address other machines could reach it at, or null. */
function outsideAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return null;
}

describe("without a token, a request from another machine", () => {
  const guardOptions = { credentials: null, readOnly: false, allowedOrigins: [] };

  it("is refused even when its Host names localhost (the listener marks each request with its socket's address)", () => {
    const spoofed = new Request("http://localhost:4680/api/stats");
    markPeer(spoofed, "192.0.2.7");
    expect(() => guard(spoofed, guardOptions, "api")).toThrow(/connections from this machine/);
    for (const local of ["127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"]) {
      const r = new Request("http://localhost:4680/api/stats");
      markPeer(r, local);
      expect(guard(r, guardOptions, "api")).toBe("none");
    }
    expect(isLoopbackAddress(undefined)).toBe(false);
    expect(isLoopbackAddress("::ffff:10.0.0.1")).toBe(false);
    expect(isLoopbackAddress("128.0.0.1")).toBe(false);
    // The fetch handler sees no socket: the Host check alone applies (documented: off loopback, give a token).
    expect(guard(new Request("http://localhost:4680/api/stats"), guardOptions, "api")).toBe("none");
  });

  it("gets 403 through the Node listener on 0.0.0.0, with Host: localhost", async (t) => {
    const address = outsideAddress();
    if (address === null) return t.skip();
    const d = createDashboard({ client: env.client, logger: quiet });
    const port = await listenAll(d.listener);
    const [spoofed, body] = await getWithHost(address, port, `localhost:${port}`, "/api/stats");
    expect(spoofed).toBe(403);
    expect(JSON.parse(body).error.code).toBe("LOOPBACK_ONLY");
    const [local] = await getWithHost("127.0.0.1", port, `localhost:${port}`, "/api/stats");
    expect(local).toBe(200);
  });

  it("is served with a token (the token, not the address, is the check)", async (t) => {
    const address = outsideAddress();
    if (address === null) return t.skip();
    const d = createDashboard({ client: env.client, logger: quiet, token: TOKEN });
    const port = await listenAll(d.listener);
    const [status] = await getWithHost(address, port, `${address}:${port}`, "/api/stats", {
      authorization: `Bearer ${TOKEN}`,
    });
    expect(status).toBe(200);
  });
});

/** A request to 127.0.0.1:`port` through `agent`; resolves to the status once the headers (and a HEAD's end) came. */
function ask(port: number, method: string, path: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const rq = httpRequest({ host: "127.0.0.1", port, path, method, agent }, (r) => {
      if (method === "HEAD" || r.statusCode !== 200) {
        r.resume();
        r.on("end", () => resolve(r.statusCode!));
      } else {
        r.once("data", () => {
          resolve(r.statusCode!);
          rq.destroy();
        });
      }
    });
    rq.on("error", reject);
    rq.end();
  });
}

describe("api/events", () => {
  it("answers HEAD with the headers alone: a hundred HEADs leave room for a GET's stream", async () => {
    const d = createDashboard({ client: env.client, logger: quiet });
    const port = await listenAll(d.listener);
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    try {
      const heads = await Promise.all(
        Array.from({ length: MAX_STREAMS + 10 }, () => ask(port, "HEAD", "/api/events", agent)),
      );
      expect(new Set(heads)).toEqual(new Set([200]));
      expect(await ask(port, "GET", "/api/events", agent)).toBe(200);
    } finally {
      agent.destroy();
    }
  });

  it("drops a stream whose first event nobody reads, and keeps one that is read", async () => {
    const events = new DashboardEvents({
      notifier: clientInternals(env.client).notifier,
      logger: quiet,
      queues: async () => [],
      maxStreams: 2,
      unreadMs: 100,
    });
    const never = new AbortController();
    const reader = events.stream(never.signal).body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("event: hello");
    events.stream(never.signal); // never read
    expect(events.open).toBe(2);
    // The unread one's timer runs out after the read one's: once it is dropped, the read one's has been judged.
    await waitFor("the unread stream to be dropped", () => events.open === 1);
    expect(() => events.stream(never.signal)).not.toThrow();
    expect(events.open).toBe(2);
    events.closeAll();
    expect(events.open).toBe(0);
    await reader.cancel();
  });
});

/** Sets task `id` to a state, as a worker (or another user) would have left it meanwhile. */
async function setState(id: string, status: string, attempt: number): Promise<void> {
  await env.pool.query(
    `UPDATE "${env.schema}".tasks SET status = $2, attempt = $3, worker_id = CASE WHEN $2 = 'PROGRESS' THEN 'w1' END,
       heartbeat_at = CASE WHEN $2 = 'PROGRESS' THEN now() END, started_at = now(),
       finished_at = CASE WHEN $2 IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN now() END
     WHERE id = $1`,
    [id, status, attempt],
  );
}

/** A form post with the bearer token (no CSRF field needed), as the pages' forms send it. */
async function postForm(d: Dashboard, path: string, fields: [string, string][]) {
  const res = await d.fetch(
    new Request(`${ORIGIN}${path}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Bearer ${TOKEN}` },
      body: new URLSearchParams(fields).toString(),
      redirect: "manual",
    }),
  );
  return { status: res.status, location: res.headers.get("location"), text: await res.text() };
}

describe("actions on a task that changed since it was shown", () => {
  const make = () => createDashboard({ client: env.client, token: TOKEN, logger: quiet });

  it("client: each action with expectStatus or expectAttempt refuses a task not in that state, and changes nothing", async () => {
    const c = env.client;
    const done = await c.createTask("job");
    await finishTask(env, done.id, "COMPLETED");
    await expect(c.deleteTask(done.id, { expectStatus: "FAILED" })).rejects.toThrow(
      /cannot delete task \d+: it is COMPLETED, expected FAILED/,
    );
    expect(await c.getTask(done.id)).not.toBeNull();
    await expect(c.retryTask(done.id, { expectStatus: "FAILED" })).rejects.toBeInstanceOf(TaskStateError);

    const failed = await c.createTask("job");
    await setState(failed.id, "FAILED", 2);
    await expect(c.retryTask(failed.id, { expectStatus: "FAILED", expectAttempt: 1 })).rejects.toThrow(
      /ran again since it was shown: attempt 2, not 1/,
    );
    expect((await c.getTask(failed.id))?.status).toBe("FAILED");
    expect((await c.retryTask(failed.id, { expectStatus: "FAILED", expectAttempt: 2 })).status).toBe("PENDING");

    const running = await c.createTask("job");
    await setState(running.id, "PROGRESS", 1);
    const refused = await c.cancelTask(running.id, { expectStatus: "PENDING" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TaskStateError);
    expect((refused as TaskStateError).status).toBe("PROGRESS");
    expect((await c.getTask(running.id))?.cancelRequested).toBe(false);
    await expect(c.runTaskNow(running.id, { expectStatus: "PENDING" })).rejects.toThrow(
      /it is PROGRESS, expected PENDING/,
    );
    expect((await c.cancelTask(running.id, { expectStatus: "PROGRESS" })).cancelRequested).toBe(true);

    // Without an expectation, as before.
    expect((await c.deleteTask(done.id)).status).toBe("COMPLETED");
    await expect(c.deleteTask(failed.id, { expectStatus: "DONE" as never })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(c.retryTask(failed.id, { expectAttempt: -1 })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(c.retryTask(failed.id, { bogus: 1 } as never)).rejects.toBeInstanceOf(InvalidOptionError);
  });

  it("page: Delete from a page that showed FAILED is refused once the task was retried and completed", async () => {
    const d = make();
    const t = await env.client.createTask("job", ["keep me"]);
    await setState(t.id, "FAILED", 1);
    const page = await d.fetch(
      new Request(`${ORIGIN}/task/${t.id}`, { headers: { authorization: `Bearer ${TOKEN}` } }),
    );
    const html = await page.text();
    expect(html).toContain('name="expect" value="FAILED"');
    expect(html).toContain('name="expectAttempt" value="1"');
    await env.client.retryTask(t.id);
    await setState(t.id, "COMPLETED", 2);
    const r = await postForm(d, `/task/${t.id}/delete`, [
      ["expect", "FAILED"],
      ["expectAttempt", "1"],
    ]);
    expect(r.status).toBe(409);
    expect(r.text).toMatch(/it is COMPLETED, expected FAILED/);
    expect(await env.client.getTask(t.id)).not.toBeNull();
  });

  it("page: bulk Cancel from the due list refuses a task that has started since", async () => {
    const d = make();
    const t = await env.client.createTask("job");
    const list = await d.fetch(new Request(`${ORIGIN}/tasks/due`, { headers: { authorization: `Bearer ${TOKEN}` } }));
    expect(await list.text()).toContain('name="expect" value="PENDING"');
    await setState(t.id, "PROGRESS", 1);
    const fields: [string, string][] = [
      ["action", "cancel"],
      ["back", "/tasks/due"],
      ["expect", "PENDING"],
      ["id", t.id],
    ];
    const confirm = await postForm(d, "/tasks/bulk", fields);
    expect(confirm.text).toContain('name="expect" value="PENDING"');
    const r = await postForm(d, "/tasks/bulk", [...fields, ["confirm", "yes"]]);
    expect(r.status).toBe(200);
    expect(r.text).toMatch(/0 cancelled, 1 refused/);
    expect(r.text).toMatch(/it is PROGRESS, expected PENDING/);
    expect((await env.client.getTask(t.id))?.cancelRequested).toBe(false);
  });

  it("JSON API: ?expect= and the bulk body's expect refuse a task in another state (409 TASK_STATE)", async () => {
    const d = make();
    const t = await env.client.createTask("job");
    await finishTask(env, t.id, "COMPLETED");
    expectError(await call(d, "POST", `/api/tasks/${t.id}/retry?expect=FAILED`), 409, "TASK_STATE");
    expectError(await call(d, "DELETE", `/api/tasks/${t.id}?expect=FAILED`), 409, "TASK_STATE");
    expectError(await call(d, "POST", `/api/tasks/${t.id}/cancel`, { expect: "PENDING" }), 409, "TASK_STATE");
    expectError(await call(d, "DELETE", `/api/tasks/${t.id}?expect=nope`), 400, "INVALID_OPTION");
    const bulk = await call(d, "POST", "/api/tasks/bulk", { action: "delete", ids: [t.id], expect: "FAILED" });
    expect(bulk.body.counts).toEqual({ ok: 0, refused: 1, byCode: { TASK_STATE: 1 } });
    expect(await env.client.getTask(t.id)).not.toBeNull();
    expect((await call(d, "DELETE", `/api/tasks/${t.id}?expect=COMPLETED&expectAttempt=1`)).status).toBe(200);
  });
});

describe("api/execute/:id", () => {
  const make = () =>
    createDashboard({
      client: env.client,
      token: TOKEN,
      logger: quiet,
      tasks: { known: async () => "ok" },
      runOptions: { heartbeatInterval: 0.2, staleAfter: 1 },
    });

  it("leaves a task it has no handler for PENDING (409 NO_HANDLER), whatever its queue", async () => {
    const d = make();
    for (const queue of ["default", "elsewhere"]) {
      const t = await env.client.createTask("elsewhere.task", [], { queue });
      const a = await call(d, "POST", `/api/execute/${t.id}`);
      expectError(a, 409, "NO_HANDLER");
      expect(a.body.error.message).toContain('no handler for "elsewhere.task"');
      expect(await env.client.getTask(t.id)).toMatchObject({ status: "PENDING", attempt: 0, error: null });
    }
    await d.close();
  });

  it("answers 409, not 500, when a cancel moved the row under the claim", async () => {
    const d = make();
    const t = await env.client.createTask("known");
    beforeMovedClaim.run = async () => void (await env.client.cancelTask(t.id));
    const a = await call(d, "POST", `/api/execute/${t.id}`);
    expectError(a, 409, "TASK_STATE");
    expect(a.body.error.message).toContain("it is CANCELLED, expected PENDING");
    await d.close();
  });

  it("claims only from the queues api/run uses unless told otherwise", async () => {
    const d = make();
    const other = await env.client.createTask("known", [], { queue: "otherq" });
    expectError(await call(d, "POST", `/api/execute/${other.id}`), 400, "INVALID_OPTION");
    expect((await env.client.getTask(other.id))?.status).toBe("PENDING");
    const ran = await call(d, "POST", `/api/execute/${other.id}?queue=otherq`);
    expect(ran.body.tasks).toEqual([expect.objectContaining({ id: other.id, outcome: "completed" })]);
    await d.close();
  });
});

describe("trigger calls at once", () => {
  it(`runs at most ${MAX_TRIGGER_CALLS}: one more answers 503 TOO_MANY_RUNS, and room comes back as they answer`, async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const d = createDashboard({
      client: env.client,
      token: TOKEN,
      logger: quiet,
      tasks: { held: () => gate },
      runOptions: { heartbeatInterval: 0.2, staleAfter: 5 },
    });
    const held = await Promise.all(
      Array.from({ length: MAX_TRIGGER_CALLS + 1 }, () => env.client.createTask("held", [], { queue: "held" })),
    );
    const calls = held.slice(0, MAX_TRIGGER_CALLS).map((t) => call(d, "POST", `/api/execute/${t.id}?queue=held`));
    await waitFor("the calls' tasks to run", async () => {
      const tasks = await Promise.all(held.slice(0, MAX_TRIGGER_CALLS).map((t) => env.client.getTask(t.id)));
      return tasks.every((t) => t?.status === "PROGRESS");
    });
    const extra = held[MAX_TRIGGER_CALLS]!;
    expectError(await call(d, "POST", `/api/execute/${extra.id}?queue=held`), 503, "TOO_MANY_RUNS");
    expectError(await call(d, "POST", "/api/run?queue=held"), 503, "TOO_MANY_RUNS");
    expect((await call(d, "GET", "/api/stats")).status).toBe(200);
    open();
    for (const a of await Promise.all(calls)) expect(a.body.tasks[0].outcome).toBe("completed");
    const later = await call(d, "POST", `/api/execute/${extra.id}?queue=held`);
    expect(later.body.tasks).toEqual([expect.objectContaining({ id: extra.id, outcome: "completed" })]);
    await d.close();
  });
});

describe("a form post", () => {
  it("is refused on its credentials before its body is read (401/403, not 413 for a large body)", async () => {
    const big = `id=${"1".repeat(300 * 1024)}`;
    const post = (d: Dashboard, url: string, headers: Record<string, string>) =>
      d.fetch(
        new Request(url, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
          body: big,
        }),
      );
    const withToken = createDashboard({ client: env.client, token: TOKEN, logger: quiet });
    const wrong = await post(withToken, `${ORIGIN}/tasks/bulk`, { authorization: "Bearer wrong-token-0123456789" });
    expect(wrong.status).toBe(401);
    const signIn = await withToken.fetch(
      new Request(`${ORIGIN}/api/session`, {
        method: "POST",
        headers: { origin: ORIGIN, "content-type": "application/json" },
        body: JSON.stringify({ token: TOKEN }),
      }),
    );
    const cookie = signIn.headers.get("set-cookie")!.split(";")[0]!;
    const foreign = await post(withToken, `${ORIGIN}/tasks/bulk`, { cookie, origin: "https://evil.example" });
    expect(foreign.status).toBe(403);
    const noToken = createDashboard({ client: env.client, logger: quiet });
    const rebound = await post(noToken, "http://evil.example:4680/tasks/bulk", {});
    expect(rebound.status).toBe(403);
    // Signed in properly, the size limit is what answers.
    expect((await post(withToken, `${ORIGIN}/tasks/bulk`, { authorization: `Bearer ${TOKEN}` })).status).toBe(413);
  });
});

describe("the purge form", () => {
  it("takes the age as plain decimal days only", async () => {
    const d = createDashboard({ client: env.client, token: TOKEN, logger: quiet });
    for (const days of ["0x1f", "1e3", "Infinity", "-1", "", "3.", "1_000"]) {
      const r = await postForm(d, "/purge", [
        ["olderThanDays", days],
        ["status", "COMPLETED"],
      ]);
      expect(r.status, days).toBe(400);
      expect(r.text).toContain("give the age in days, such as 30 or 0.5");
    }
    for (const days of ["30", "0.5", " 7 "]) {
      const r = await postForm(d, "/purge", [
        ["olderThanDays", days],
        ["status", "COMPLETED"],
      ]);
      expect(r.status, days).toBe(200);
      expect(r.text).toMatch(/would be deleted/);
    }
  });
});

describe("redirects after a form or a sign-in", () => {
  it("never leave the dashboard: back=/admin/..//evil.com and next=/admin/../x fall back under the base path", async () => {
    const d = createDashboard({ client: env.client, token: TOKEN, logger: quiet, basePath: "/admin" });
    const bulk = (back: string) =>
      postForm(d, "/admin/tasks/bulk", [
        ["action", "retry"],
        ["back", back],
      ]);
    for (const back of [
      "/admin/..//evil.com",
      "/admin/%2e%2e//evil.com",
      "/admin/../x",
      "//evil.com",
      "/admin\\..\\x",
    ]) {
      const r = await bulk(back);
      expect(r.status).toBe(303);
      expect(r.location).toBe("/admin/tasks/failed?done=none-selected");
    }
    expect((await bulk("/admin/tasks/due?queue=a")).location).toBe("/admin/tasks/due?queue=a&done=none-selected");
    expect((await bulk("/admin/x/../tasks/due")).location).toBe("/admin/tasks/due?done=none-selected");
    for (const next of ["/admin/../x", "/admin/..//evil.com", "https://evil.com/admin"]) {
      const page = await d.fetch(new Request(`${ORIGIN}/admin/login?next=${encodeURIComponent(next)}`));
      expect(await page.text()).toContain('name="next" value="/admin"');
    }
    const signIn = await d.fetch(
      new Request(`${ORIGIN}/admin/login`, {
        method: "POST",
        headers: { origin: ORIGIN, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: TOKEN, next: "/admin/../evil" }).toString(),
        redirect: "manual",
      }),
    );
    expect(signIn.headers.get("location")).toBe("/admin");
  });
});

describe.skipIf(missingTools("pgbouncer"))("trigger calls through PgBouncer", () => {
  const bouncer = new PrivatePgBouncer({ targetUrl: DATABASE_URL, poolSize: 1 });
  beforeAll(() => bouncer.start());
  afterAll(() => bouncer.stop());

  it("beat with unnamed statements, as a worker's heartbeat does there", async () => {
    const client = new SkiplockClient({
      databaseUrl: bouncer.url,
      redisUrl: null,
      schema: env.schema,
      pgbouncer: true,
      logger: quiet,
    });
    heartbeats.length = 0;
    const d = createDashboard({
      client,
      token: TOKEN,
      logger: quiet,
      tasks: { nap: async () => new Promise((r) => setTimeout(r, 300)) },
      runOptions: { heartbeatInterval: 0.05, staleAfter: 5 },
    });
    let beats = 0;
    const failed: string[] = [];
    d.events.on("beat", ({ rows }) => void (beats += rows));
    d.events.on("beat:failed", ({ error }) => void failed.push(error));
    try {
      const a = await client.createTask("nap");
      const b = await client.createTask("nap");
      const runs = await Promise.all([a, b].map((t) => call(d, "POST", `/api/execute/${t.id}`)));
      expect(runs.map((r) => r.body.tasks?.[0]?.outcome)).toEqual(["completed", "completed"]);
      expect(failed).toEqual([]);
      expect(heartbeats.length).toBeGreaterThanOrEqual(2);
      expect(heartbeats.every((o) => o.pgbouncer === true)).toBe(true);
      expect(beats).toBeGreaterThan(0);
    } finally {
      await d.close();
      await client.close();
    }
  });
});

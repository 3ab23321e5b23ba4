// The dashboard's HTML pages over fetch: each view, escaping, sign-in, form posts without JavaScript (CSRF field and
// Origin), actions refused on a changed task, bulk and purge steps, read-only, and the event stream.
import { describe, expect, it } from "vitest";
import { createDashboard, SkiplockClient, type Dashboard } from "../src/index.js";
import { finishTask, ORIGIN, TOKEN } from "./dashboard-fixture.js";
import { insertCrashedTasks, quiet } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";

const env = workerFixture({
  label: "dashboard_pages",
  workerDefaults: { heartbeatInterval: 0.2, staleAfter: 600, pollInterval: 0.2 },
  deleteTasksAfterEach: true,
});

const make = (options: Parameters<typeof createDashboard>[0] = {}): Dashboard =>
  createDashboard({ client: env.client, token: TOKEN, logger: quiet, ...options });

interface Page {
  status: number;
  headers: Headers;
  text: string;
}

async function get(d: Dashboard, path: string, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) {
  const res = await d.fetch(new Request(`${ORIGIN}${path}`, { headers, redirect: "manual" }));
  return { status: res.status, headers: res.headers, text: await res.text() } satisfies Page;
}

async function post(d: Dashboard, path: string, fields: [string, string][], headers: Record<string, string>) {
  const res = await d.fetch(
    new Request(`${ORIGIN}${path}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      body: new URLSearchParams(fields).toString(),
      redirect: "manual",
    }),
  );
  return { status: res.status, headers: res.headers, text: await res.text() } satisfies Page;
}

/** Signs in through the sign-in form, as a browser without JavaScript does; the cookie and the page's CSRF token. */
async function signIn(d: Dashboard): Promise<{ cookie: string; csrf: string }> {
  const login = await post(
    d,
    "/login",
    [
      ["token", TOKEN],
      ["next", "/"],
    ],
    { origin: ORIGIN },
  );
  expect(login.status).toBe(303);
  const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
  const page = await get(d, "/", { cookie });
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1];
  expect(csrf).toBeTruthy();
  return { cookie, csrf: csrf! };
}

const failedTask = async (name = "job", args: unknown[] = [], queue = "default") => {
  const t = await env.client.createTask(name, args, { queue });
  await finishTask(env, t.id, "FAILED");
  return t;
};

describe("views", () => {
  it("renders the overview, every list, a task, workers and schedules as HTML with the security headers", async () => {
    const d = make();
    await env.startWorker({ tasks: { noop: () => null }, queues: ["idle"] });
    const failed = await failedTask("report.build", [1], "reports");
    const done = await env.client.createTask("mail.send", ["a@example.com"], { queue: "mail" });
    await finishTask(env, done.id, "COMPLETED");
    const due = await env.client.createTask("mail.send", [], { queue: "mail" });
    const later = await env.client.createTask("mail.send", [], { queue: "mail", delay: 3600 });
    const [stale] = await insertCrashedTasks(env.pool, env.schema, 1, { heartbeatAge: 45, name: "crashy" });
    const [running] = await insertCrashedTasks(env.pool, env.schema, 1, { heartbeatAge: 0, name: "busy" });
    const cancelled = await env.client.createTask("job");
    await env.client.cancelTask(cancelled.id);

    const overview = await get(d, "/");
    expect(overview.status).toBe(200);
    expect(overview.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(overview.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(overview.text).toContain("<h1>Overview</h1>");
    for (const q of ["reports", "mail", "default"]) expect(overview.text).toContain(`>${q}</a>`);
    expect(overview.text).toMatch(/<svg\s+class="chart"/);
    expect(overview.text).not.toMatch(/<script>|style="|onclick=/); // nothing inline for the CSP to block

    const lists: [string, string, string[]][] = [
      ["failed", failed.id, [due.id, done.id]],
      ["completed", done.id, [failed.id]],
      ["due", due.id, [later.id]],
      ["scheduled", later.id, [due.id]],
      ["stale", stale!, [running!]],
      ["running", running!, []],
      ["cancelled", cancelled.id, [failed.id]],
    ];
    for (const [view, has, hasNot] of lists) {
      const page = await get(d, `/tasks/${view}`);
      expect(page.status, view).toBe(200);
      expect(page.text, view).toContain(`href="/task/${has}"`);
      for (const id of hasNot) expect(page.text, `${view} without ${id}`).not.toContain(`href="/task/${id}"`);
    }
    expect((await get(d, "/tasks/running")).text).toContain(`href="/task/${stale}"`); // stale ones are running too

    const detail = await get(d, `/task/${failed.id}`);
    expect(detail.status).toBe(200);
    for (const text of ["report.build", "reports", "FAILED", "boom", "Retry", "Delete"])
      expect(detail.text).toContain(text);
    const workers = await get(d, "/workers");
    expect(workers.text).toMatch(/class="status-badge completed"\s*>\s*live\s*</);
    expect((await get(d, "/schedules")).status).toBe(200);
    const css = /href="(\/assets\/app\.css\?v=[0-9a-f]+)"/.exec(overview.text)![1]!;
    const asset = await get(d, css, {}); // served without a session: it holds nothing private
    expect([asset.status, asset.headers.get("content-type")]).toEqual([200, "text/css; charset=utf-8"]);
    expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect((await get(d, "/assets/app.js", {})).headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect((await get(d, "/assets/..%2Fpage-data.ts", {})).status).toBe(404);
    expect((await get(d, "/tasks/nothing")).status).toBe(404);
    expect((await get(d, "/task/424242424")).status).toBe(404);
    expect((await get(d, "/task/abc")).status).toBe(400);
  });

  it("filters by queue and name, goes to a task by id, and pages by keyset", async () => {
    const d = make();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await failedTask(i % 2 ? "odd" : "even", [], i < 3 ? "a" : "b")).id);
    const byQueue = await get(d, "/tasks/failed?queue=a&name=even");
    expect(byQueue.text).toContain(`/task/${ids[0]}"`);
    expect(byQueue.text).toContain(`/task/${ids[2]}"`);
    expect(byQueue.text).not.toContain(`/task/${ids[1]}"`);
    expect(byQueue.text).not.toContain(`/task/${ids[4]}"`);
    const go = await get(d, `/tasks/failed?id=${ids[3]}`);
    expect(go.status).toBe(303);
    expect(go.headers.get("location")).toBe(`/task/${ids[3]}`);
    const first = await get(d, "/tasks/failed?limit=2");
    const next = /href="([^"]+)" rel="next"/.exec(first.text)![1]!.replaceAll("&amp;", "&");
    expect(next).toBe(`/tasks/failed?after=${ids[3]}`);
    const second = await get(d, `${next}&limit=2`);
    expect(second.text).toContain(`/task/${ids[2]}"`);
    expect(second.text).not.toContain(`/task/${ids[4]}"`);
    const bad = await get(d, "/tasks/failed?queue=no%20spaces");
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('class="notice error"');
  });

  it("renders a task whose name, args, result, error, meta and progress hold markup as text", async () => {
    const d = make();
    const evil = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "javascript:alert(3)"];
    const t = await env.client.createTask("job", evil, { meta: { link: evil[2]!, html: evil[0]! } });
    // A row written by another tool: names are validated on enqueue, not in the table.
    await env.pool.query(
      `UPDATE "${env.schema}".tasks SET name = $2, queue = $3, status = 'FAILED', finished_at = now(), attempt = 1,
         result = $4::jsonb, error = $5, errors = jsonb_build_array(jsonb_build_object('type', $6::text,
           'message', $5::text, 'stack', $5::text, 'attempt', 1, 'workerId', $6::text, 'at', now()))
       WHERE id = $1`,
      [t.id, evil[0], evil[1], JSON.stringify({ html: evil[1] }), `Error: ${evil[0]}\n    at ${evil[1]}`, evil[1]],
    );
    const pages = [await get(d, `/task/${t.id}`), await get(d, "/tasks/failed"), await get(d, "/")];
    for (const p of pages) {
      expect(p.status).toBe(200);
      expect(p.text).not.toContain("<script>alert");
      expect(p.text).not.toContain("<img src=x");
      expect(p.text).not.toMatch(/href="javascript:/i);
      // Every tag, its quoted attribute values emptied (a `"` inside one is &quot;): only the page's own, no handler.
      const tags = [...p.text.replace(/"[^"]*"/g, '""').matchAll(/<([a-z][\w-]*)([^>]*)>/gi)];
      expect(tags.filter(([, name]) => /^(img|iframe|object|embed)$/i.test(name!))).toEqual([]);
      expect(tags.filter(([, , attrs]) => /\son\w+\s*=/i.test(attrs!))).toEqual([]);
      expect(tags.filter(([, name]) => name!.toLowerCase() === "script").map(([tag]) => tag)).toEqual([
        '<script src="" defer>',
      ]);
    }
    expect(pages[0]!.text).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(pages[0]!.text).toContain("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;");
    expect(pages[1]!.text).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
  });

  it("shows at most 64 KiB of a large value and says where the rest is", async () => {
    const d = make();
    const t = await env.client.createTask("job", ["x".repeat(200_000)]);
    const page = await get(d, `/task/${t.id}`);
    expect(page.text.length).toBeLessThan(100_000);
    expect(page.text).toContain("more characters (the JSON API has the whole value)");
  });
});

describe("signing in and form posts without JavaScript", () => {
  it("sends a page without a session to the sign-in form, and signs in with the token", async () => {
    const d = make({ basePath: "/admin" });
    const away = await get(d, "/admin/tasks/failed?queue=a", {});
    expect(away.status).toBe(303);
    expect(away.headers.get("location")).toBe("/admin/login?next=%2Fadmin%2Ftasks%2Ffailed%3Fqueue%3Da");
    const form = await get(d, "/admin/login?next=%2Fadmin%2Ftasks%2Ffailed", {});
    expect(form.status).toBe(200);
    expect(form.text).toContain('action="/admin/login"');
    const wrong = await post(d, "/admin/login", [["token", "nope-nope-nope-nope"]], { origin: ORIGIN });
    expect(wrong.status).toBe(401);
    expect(wrong.text).toContain("Wrong token.");
    const foreign = await post(d, "/admin/login", [["token", TOKEN]], { origin: "https://evil.example" });
    expect(foreign.status).toBe(403);
    const ok = await post(
      d,
      "/admin/login",
      [
        ["token", TOKEN],
        ["next", "//evil.example/x"],
      ],
      { origin: ORIGIN },
    );
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe("/admin"); // a next outside the dashboard is ignored
    expect(ok.headers.get("set-cookie")).toMatch(
      /^skiplock_session=v1\.[^;]+; Path=\/admin; Max-Age=\d+; HttpOnly; SameSite=Strict$/,
    );
    const cookie = ok.headers.get("set-cookie")!.split(";")[0]!;
    const page = await get(d, "/admin/tasks/failed", { cookie });
    expect(page.status).toBe(200);
    expect(page.text).toContain('href="/admin/assets/app.css?v=');
    const out = await post(d, "/admin/logout", [], { cookie, origin: ORIGIN });
    expect(out.status).toBe(303);
    expect(out.headers.get("set-cookie")).toMatch(/^skiplock_session=; Path=\/admin; Max-Age=0;/);
  });

  it("acts on a form post that carries the CSRF field from the dashboard's Origin, and refuses any other", async () => {
    const d = make();
    const { cookie, csrf } = await signIn(d);
    const t = await failedTask();
    const path = `/task/${t.id}/retry`;
    const refusals: [[string, string][], Record<string, string>, number, string][] = [
      [[], { cookie, origin: ORIGIN }, 403, "CSRF token"],
      [[["_csrf", "wrong"]], { cookie, origin: ORIGIN }, 403, "CSRF token"],
      [[["_csrf", csrf]], { cookie, origin: "https://evil.example" }, 403, "another site"],
      [[["_csrf", csrf]], { cookie }, 403, "another site"],
      [[["_csrf", csrf]], { origin: ORIGIN }, 401, "sign in"],
    ];
    for (const [fields, headers, status, says] of refusals) {
      const a = await post(d, path, fields, headers);
      expect(a.status, says).toBe(status);
      expect(a.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(a.text).toContain(says);
    }
    expect((await env.client.getTask(t.id))?.status).toBe("FAILED");
    const ok = await post(d, path, [["_csrf", csrf]], { cookie, origin: ORIGIN });
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe(`/task/${t.id}?done=retry`);
    expect((await env.client.getTask(t.id))?.status).toBe("PENDING");
    const shown = await get(d, ok.headers.get("location")!, { cookie });
    expect(shown.text).toContain("Retried: the task is pending again");
    // A JSON body is not a form.
    const json = await d.fetch(
      new Request(`${ORIGIN}/task/${t.id}/cancel`, {
        method: "POST",
        headers: { cookie, origin: ORIGIN, "content-type": "application/json" },
        body: JSON.stringify({ _csrf: csrf }),
      }),
    );
    expect(json.status).toBe(415);
  });

  it("refuses an action on a task that changed state, showing the task as it is with the reason", async () => {
    const d = make();
    const { cookie, csrf } = await signIn(d);
    const t = await failedTask();
    await env.client.retryTask(t.id); // someone else retried it since the page was shown
    const a = await post(d, `/task/${t.id}/retry`, [["_csrf", csrf]], { cookie, origin: ORIGIN });
    expect(a.status).toBe(409);
    expect(a.text).toContain(`cannot retry task ${t.id}: it is PENDING, expected FAILED or CANCELLED`);
    expect(a.text).toContain('data-live="off"');
  });

  it("asks to confirm a bulk action, then reports what was done and what was refused", async () => {
    const d = make();
    const { cookie, csrf } = await signIn(d);
    const a = await failedTask();
    const b = await failedTask();
    const c = await failedTask();
    await env.client.retryTask(c.id);
    const fields: [string, string][] = [
      ["_csrf", csrf],
      ["action", "retry"],
      ["back", "/tasks/failed?queue=default"],
      ["id", a.id],
      ["id", b.id],
      ["id", c.id],
    ];
    const confirm = await post(d, "/tasks/bulk", fields, { cookie, origin: ORIGIN });
    expect(confirm.status).toBe(200);
    expect(confirm.text).toContain("Retry 3 tasks?");
    expect((await env.client.getTask(a.id))?.status).toBe("FAILED");
    const done = await post(d, "/tasks/bulk", [...fields, ["confirm", "yes"]], { cookie, origin: ORIGIN });
    expect(done.status).toBe(200);
    expect(done.text).toContain("2 retried, 1 refused");
    expect(done.text).toContain(`cannot retry task ${c.id}: it is PENDING`);
    expect(done.text).toContain('href="/tasks/failed?queue=default"');
    expect((await env.client.getTask(b.id))?.status).toBe("PENDING");
    const none = await post(d, "/tasks/bulk", fields.slice(0, 3), { cookie, origin: ORIGIN });
    expect(none.status).toBe(303);
    expect(none.headers.get("location")).toBe("/tasks/failed?queue=default&done=none-selected");
    const away = await post(
      d,
      "/tasks/bulk",
      [...fields.slice(0, 2), ["back", "https://evil.example/"], ["id", a.id]],
      {
        cookie,
        origin: ORIGIN,
      },
    );
    expect(away.text).toContain('href="/tasks/failed"');
    expect(away.text).not.toContain("evil.example");
  });

  it("counts a purge first, then deletes on confirmation", async () => {
    const d = make();
    const { cookie, csrf } = await signIn(d);
    const old = await failedTask();
    await env.pool.query(`UPDATE "${env.schema}".tasks SET finished_at = now() - interval '40 days' WHERE id = $1`, [
      old.id,
    ]);
    const recent = await failedTask();
    const fields: [string, string][] = [
      ["_csrf", csrf],
      ["olderThanDays", "30"],
      ["status", "FAILED"],
    ];
    const dry = await post(d, "/purge", fields, { cookie, origin: ORIGIN });
    expect(dry.text).toContain("1 task would be deleted.");
    expect(await env.client.getTask(old.id)).not.toBeNull();
    const real = await post(d, "/purge", [...fields, ["confirm", "yes"]], { cookie, origin: ORIGIN });
    expect(real.text).toContain("Deleted 1 tasks.");
    expect(await env.client.getTask(old.id)).toBeNull();
    expect(await env.client.getTask(recent.id)).not.toBeNull();
    const bad = await post(
      d,
      "/purge",
      [
        ["_csrf", csrf],
        ["olderThanDays", "-3"],
      ],
      { cookie, origin: ORIGIN },
    );
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('class="notice error"');
  });

  it("pauses, resumes and triggers a schedule from its page", async () => {
    const d = make();
    const { cookie, csrf } = await signIn(d);
    const worker = await env.startWorker({
      tasks: { tick: () => null },
      schedules: [{ name: "nightly", cron: "30 2 * * *", task: "tick", args: ['<b>"x"</b>'] }],
    });
    const page = await get(d, "/schedules", { cookie });
    expect(page.text).toContain("<strong>nightly</strong>");
    expect(page.text).toContain("30 2 * * *");
    expect(page.text).toContain("&lt;b&gt;");
    const form = [["_csrf", csrf]] as [string, string][];
    const paused = await post(d, "/schedules/nightly/pause", form, { cookie, origin: ORIGIN });
    expect(paused.headers.get("location")).toBe("/schedules?done=pause");
    expect((await env.client.listSchedules())[0]?.paused).toBe(true);
    expect((await get(d, "/schedules?done=pause", { cookie })).text).toContain("The schedule is paused.");
    await post(d, "/schedules/nightly/resume", form, { cookie, origin: ORIGIN });
    expect((await env.client.listSchedules())[0]?.paused).toBe(false);
    const triggered = await post(d, "/schedules/nightly/trigger", form, { cookie, origin: ORIGIN });
    expect(triggered.headers.get("location")).toMatch(/^\/task\/\d+\?done=trigger$/);
    const missing = await post(d, "/schedules/none/pause", form, { cookie, origin: ORIGIN });
    expect(missing.status).toBe(404);
    expect(missing.text).toContain("none");
    await worker.stop();
  });

  it("without a token: serves loopback only, takes same-origin form posts and refuses foreign ones", async () => {
    const d = createDashboard({ client: env.client, logger: quiet, basePath: "/ops" });
    const t = await failedTask();
    expect((await get(d, "/ops", {})).status).toBe(200);
    const slash = await get(d, "/ops/", {});
    expect([slash.status, slash.headers.get("location")]).toEqual([308, "/ops"]);
    expect((await get(d, "/ops/login", {})).headers.get("location")).toBe("/ops");
    const page = await get(d, `/ops/task/${t.id}`, {});
    expect(page.text).not.toContain("_csrf");
    expect(page.text).not.toContain("Sign out");
    const rebound = await d.fetch(new Request(`http://evil.example/ops/task/${t.id}`));
    expect(rebound.status).toBe(403);
    const foreign = await post(d, `/ops/task/${t.id}/retry`, [], { origin: "https://evil.example" });
    expect(foreign.status).toBe(403);
    expect((await env.client.getTask(t.id))?.status).toBe("FAILED");
    const ok = await post(d, `/ops/task/${t.id}/retry`, [], { origin: ORIGIN });
    expect([ok.status, ok.headers.get("location")]).toEqual([303, `/ops/task/${t.id}?done=retry`]);
  });
});

describe("read-only", () => {
  it("shows no action and refuses every form post", async () => {
    const d = make({ readOnly: true });
    const { cookie, csrf } = await signIn(d);
    const t = await failedTask();
    for (const path of ["/", "/tasks/failed", `/task/${t.id}`, "/schedules"]) {
      const page = await get(d, path, { cookie });
      expect(page.status, path).toBe(200);
      // The only form that posts is signing out.
      expect(page.text.match(/method="post"/g) ?? [], path).toHaveLength(1);
      expect(page.text).toContain('action="/logout"');
      expect(page.text).not.toContain(">Retry<");
    }
    expect((await get(d, "/purge", { cookie })).status).toBe(403);
    const posts: [string, [string, string][]][] = [
      [`/task/${t.id}/retry`, []],
      [
        "/tasks/bulk",
        [
          ["action", "retry"],
          ["id", t.id],
          ["confirm", "yes"],
        ],
      ],
      [
        "/purge",
        [
          ["olderThanDays", "0"],
          ["confirm", "yes"],
        ],
      ],
      ["/schedules/x/pause", []],
    ];
    for (const [path, fields] of posts) {
      const a = await post(d, path, [["_csrf", csrf], ...fields], { cookie, origin: ORIGIN });
      expect(a.status, path).toBe(403);
      expect(a.text).toContain("read-only");
    }
    expect((await env.client.getTask(t.id))?.status).toBe("FAILED");
  });
});

/** Reads a stream's events until `until` returns true for one; each as { event, data }. */
async function readEvents(
  body: ReadableStream<Uint8Array>,
  until: (e: { event: string; data: any }) => boolean,
): Promise<{ event: string; data: any }[]> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const seen: { event: string; data: any }[] = [];
  let buffer = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`the stream ended; events seen: ${JSON.stringify(seen)}`);
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event === undefined || data === undefined) continue;
        const e = { event, data: JSON.parse(data) };
        seen.push(e);
        if (until(e)) return seen;
      }
    }
  } finally {
    await reader.cancel();
  }
}

describe("api/events", () => {
  it("sends an event naming a task when a worker finishes it", async () => {
    const d = make();
    const { cookie } = await signIn(d);
    const res = await d.fetch(new Request(`${ORIGIN}/api/events`, { headers: { cookie } }));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const t = await env.client.createTask("add", [2, 3]);
    const events = readEvents(res.body!, (e) => e.event === "change" && e.data.finished.includes(t.id));
    await env.startWorker({ tasks: { add: (a: number, b: number) => a + b } });
    const seen = await events;
    expect(seen[0]).toEqual({ event: "hello", data: { doorbell: expect.any(Boolean) } });
    expect((await env.finished(t)).result).toBe(5);
  });

  it("says when a queue it knows gets a new task", async () => {
    const d = make();
    await env.client.createTask("job", [], { queue: "inbox" }); // the overview's counts name the queue
    const res = await d.fetch(new Request(`${ORIGIN}/api/events`, { headers: { authorization: `Bearer ${TOKEN}` } }));
    let subscribed = false;
    const seen = readEvents(res.body!, (e) => {
      if (e.event === "hello") subscribed = true;
      return e.event === "change" && e.data.wake === true;
    });
    // The stream subscribes to the queues' wake channels once it has read them: enqueue until one is heard.
    const enqueue = setInterval(() => {
      if (subscribed) void env.client.createTask("job", [], { queue: "inbox" });
    }, 200);
    try {
      expect((await seen).at(-1)).toMatchObject({ event: "change", data: { wake: true } });
    } finally {
      clearInterval(enqueue);
    }
  });

  it("refreshes on a timer without Redis", async () => {
    const client = new SkiplockClient({ databaseUrl: env.databaseUrl, schema: env.schema, logger: quiet });
    try {
      const d = createDashboard({ client, token: TOKEN, logger: quiet });
      const res = await d.fetch(new Request(`${ORIGIN}/api/events`, { headers: { authorization: `Bearer ${TOKEN}` } }));
      const seen = await readEvents(res.body!, (e) => e.event === "refresh");
      expect(seen.at(-1)).toEqual({ event: "refresh", data: { doorbell: false } });
    } finally {
      await client.close();
    }
  });

  it("refuses a stream without credentials, and one past the bound until another closes", async () => {
    const d = make();
    expect((await d.fetch(new Request(`${ORIGIN}/api/events`))).status).toBe(401);
    const auth = { authorization: `Bearer ${TOKEN}` };
    const open: Response[] = [];
    for (let i = 0; i < 100; i++) open.push(await d.fetch(new Request(`${ORIGIN}/api/events`, { headers: auth })));
    expect(open.every((r) => r.status === 200)).toBe(true);
    const over = await d.fetch(new Request(`${ORIGIN}/api/events`, { headers: auth }));
    expect(over.status).toBe(503);
    await open.pop()!.body!.cancel();
    const again = await d.fetch(new Request(`${ORIGIN}/api/events`, { headers: auth }));
    expect(again.status).toBe(200);
    for (const r of [...open, again]) await r.body!.cancel();
  });
});

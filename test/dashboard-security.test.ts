import { describe, expect, it } from "vitest";
import { createDashboard, InvalidOptionError, type Dashboard, type Logger } from "../src/index.js";
import { Credentials, sameSecret, SESSION_SECONDS } from "../src/dashboard/auth.js";
import { call, expectError, ORIGIN, TOKEN, type Answer } from "./dashboard-fixture.js";
import { quiet } from "./helpers.js";
import { schemaFixture } from "./schema-fixture.js";

const env = schemaFixture({ label: "dashboard_security" });

const make = (options: Parameters<typeof createDashboard>[0] = {}): Dashboard =>
  createDashboard({ client: env.client, token: TOKEN, logger: quiet, ...options });

/** Signs in through POST api/session; the cookie as the browser would send it back, and the CSRF token. */
async function signIn(d: Dashboard, base = ""): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const a = await call(d, "POST", `${base}/api/session`, { token: TOKEN }, { origin: ORIGIN });
  expect(a.status).toBe(200);
  const setCookie = a.headers.get("set-cookie")!;
  return { cookie: setCookie.split(";")[0]!, csrf: a.body.csrfToken, setCookie };
}

/** A logger that keeps every line, to check what it was told. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (message: string, fields?: Record<string, unknown>) =>
    void lines.push(`${message} ${JSON.stringify(fields ?? {})}`);
  return { lines, debug: keep, info: keep, warn: keep, error: keep };
}

const expectSecurityHeaders = (a: Answer) => {
  const csp = a.headers.get("content-security-policy")!;
  expect(csp).toContain("script-src 'self'");
  expect(csp).not.toContain("unsafe-inline");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(a.headers.get("x-content-type-options")).toBe("nosniff");
  expect(a.headers.get("referrer-policy")).toBe("same-origin");
  expect(a.headers.get("x-frame-options")).toBe("DENY");
};

describe("with a token", () => {
  it("refuses a request without credentials or with a wrong token (401), and never echoes the token", async () => {
    const d = make();
    const none = await call(d, "GET", "/api/stats", undefined, {});
    expectError(none, 401, "UNAUTHORIZED");
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    const wrong = await call(d, "GET", "/api/stats", undefined, { authorization: `Bearer ${TOKEN}x` });
    expectError(wrong, 401, "UNAUTHORIZED");
    expectError(
      await call(d, "GET", "/api/stats", undefined, { authorization: `Basic ${TOKEN}` }),
      401,
      "UNAUTHORIZED",
    );
    const t = await env.client.createTask("job");
    const action = await call(d, "POST", `/api/tasks/${t.id}/cancel`, undefined, { authorization: "Bearer nope" });
    expectError(action, 401, "UNAUTHORIZED");
    expect((await env.client.getTask(t.id))?.status).toBe("PENDING");
    for (const a of [none, wrong, action]) expect(JSON.stringify(a.body)).not.toContain(TOKEN);
  });

  it("lets a bearer call act without a CSRF token or an Origin", async () => {
    const d = make();
    const t = await env.client.createTask("job");
    const a = await call(d, "POST", `/api/tasks/${t.id}/cancel`);
    expect(a.status).toBe(200);
    expect(a.body.task.status).toBe("CANCELLED");
  });

  it("signs a browser in with an HttpOnly, SameSite=Strict cookie scoped to the base path, and a CSRF token", async () => {
    const d = make({ basePath: "/admin" });
    expectError(
      await call(d, "POST", "/admin/api/session", { token: "wrong-token-0123456789" }, { origin: ORIGIN }),
      401,
      "UNAUTHORIZED",
    );
    const { cookie, csrf, setCookie } = await signIn(d, "/admin");
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; SameSite=Strict/);
    expect(setCookie).toMatch(/; Path=\/admin;/);
    expect(setCookie).not.toMatch(/Secure/); // served over http here; https requests get Secure
    expect(setCookie).not.toContain(TOKEN);
    const stats = await call(d, "GET", "/admin/api/stats", undefined, { cookie });
    expect(stats.status).toBe(200);
    // After a reload the page asks for its CSRF token again.
    expect((await call(d, "GET", "/admin/api/session", undefined, { cookie })).body.csrfToken).toBe(csrf);
    const t = await env.client.createTask("job");
    const ok = await call(d, "POST", `/admin/api/tasks/${t.id}/cancel`, undefined, {
      cookie,
      origin: ORIGIN,
      "x-csrf-token": csrf,
    });
    expect(ok.status).toBe(200);
  });

  it("marks the cookie Secure for a request that came over https", async () => {
    const d = make();
    const res = await d.fetch(
      new Request("https://ops.example.com/api/session", {
        method: "POST",
        headers: { "content-type": "application/json", origin: "https://ops.example.com" },
        body: JSON.stringify({ token: TOKEN }),
      }),
    );
    expect(res.headers.get("set-cookie")).toMatch(/; Secure$/);
  });

  it("refuses a cookie-authenticated action without the CSRF token, with another session's, or from a foreign Origin", async () => {
    const d = make();
    const { cookie, csrf } = await signIn(d);
    const other = await signIn(d);
    const t = await env.client.createTask("job");
    const path = `/api/tasks/${t.id}/cancel`;
    expectError(await call(d, "POST", path, undefined, { cookie, origin: ORIGIN }), 403, "CSRF_TOKEN");
    expectError(
      await call(d, "POST", path, undefined, { cookie, origin: ORIGIN, "x-csrf-token": other.csrf }),
      403,
      "CSRF_TOKEN",
    );
    expectError(
      await call(d, "POST", path, undefined, { cookie, origin: "https://evil.example", "x-csrf-token": csrf }),
      403,
      "FOREIGN_ORIGIN",
    );
    expectError(await call(d, "POST", path, undefined, { cookie, "x-csrf-token": csrf }), 403, "FOREIGN_ORIGIN");
    expectError(
      await call(d, "DELETE", `/api/tasks/${t.id}`, undefined, { cookie, origin: "null", "x-csrf-token": csrf }),
      403,
      "FOREIGN_ORIGIN",
    );
    expect((await env.client.getTask(t.id))?.status).toBe("PENDING");
    // An origin named in allowedOrigins (a TLS proxy's public one) is accepted.
    const proxied = make({ allowedOrigins: ["https://ops.example.com"] });
    const ok = await call(proxied, "POST", path, undefined, {
      cookie,
      origin: "https://ops.example.com",
      "x-csrf-token": csrf,
    });
    expect(ok.status).toBe(200);
  });

  it("refuses a tampered, expired or foreign-token cookie, and a sign-in from a foreign Origin", async () => {
    const d = make();
    const { cookie } = await signIn(d);
    const tampered = cookie.replace(/v1\.(\d+)/, (_, n: string) => `v1.${Number(n) + 1000}`);
    expectError(await call(d, "GET", "/api/stats", undefined, { cookie: tampered }), 401, "UNAUTHORIZED");
    const expired = new Credentials(TOKEN).issue(Date.now() - (SESSION_SECONDS + 60) * 1000).cookie;
    expectError(
      await call(d, "GET", "/api/stats", undefined, { cookie: `skiplock_session=${expired}` }),
      401,
      "UNAUTHORIZED",
    );
    const otherToken = new Credentials("another-token-0123456789").issue().cookie;
    expectError(
      await call(d, "GET", "/api/stats", undefined, { cookie: `skiplock_session=${otherToken}` }),
      401,
      "UNAUTHORIZED",
    );
    expectError(
      await call(d, "POST", "/api/session", { token: TOKEN }, { origin: "https://evil.example" }),
      403,
      "FOREIGN_ORIGIN",
    );
  });

  it("signs out by clearing the cookie", async () => {
    const d = make();
    const a = await call(d, "DELETE", "/api/session", undefined, { origin: ORIGIN });
    expect(a.status).toBe(200);
    expect(a.headers.get("set-cookie")).toMatch(/^skiplock_session=; Path=\/; Max-Age=0;/);
  });
});

describe("read-only", () => {
  it("refuses every action with 403, still answers reads, and says so in api/stats", async () => {
    const d = make({ readOnly: true });
    const t = await env.client.createTask("job");
    const { cookie, csrf } = await signIn(d);
    const browser = { cookie, origin: ORIGIN, "x-csrf-token": csrf };
    const actions: [string, string, unknown?][] = [
      ["POST", `/api/tasks/${t.id}/cancel`],
      ["POST", `/api/tasks/${t.id}/retry`],
      ["POST", `/api/tasks/${t.id}/run-now`],
      ["DELETE", `/api/tasks/${t.id}`],
      ["POST", "/api/tasks", { name: "job" }],
      ["POST", "/api/tasks/bulk", { action: "cancel", ids: [t.id] }],
      ["POST", "/api/purge", { olderThanDays: 0 }],
      ["POST", "/api/schedules/x/pause"],
      ["POST", "/api/schedules/x/trigger"],
    ];
    for (const [method, path, body] of actions) {
      expectError(await call(d, method, path, body), 403, "READ_ONLY");
      expectError(await call(d, method, path, body, browser), 403, "READ_ONLY");
    }
    expect((await env.client.getTask(t.id))?.status).toBe("PENDING");
    const stats = await call(d, "GET", "/api/stats");
    expect(stats.body.readOnly).toBe(true);
    expect((await call(d, "GET", `/api/tasks/${t.id}`)).status).toBe(200);
    expect((await call(d, "GET", "/api/session", undefined, { cookie })).body.readOnly).toBe(true);
  });
});

describe("without a token", () => {
  it("logs a warning, answers on loopback hosts only, and refuses a state change from a foreign Origin", async () => {
    const logger = recordingLogger();
    const d = createDashboard({ client: env.client, logger });
    expect(logger.lines.some((l) => /without a token/.test(l))).toBe(true);
    expect((await call(d, "GET", "/api/stats", undefined, {})).status).toBe(200);
    const localhost = await d.fetch(new Request("http://localhost:4680/api/workers"));
    expect(localhost.status).toBe(200);
    // A site whose name resolves to 127.0.0.1 (DNS rebinding) still sends its own name as Host.
    const rebound = await d.fetch(new Request("http://evil.example:4680/api/stats"));
    expect(rebound.status).toBe(403);
    expect(((await rebound.json()) as { error: { code: string } }).error.code).toBe("LOOPBACK_ONLY");
    const t = await env.client.createTask("job");
    const foreign = await call(d, "POST", `/api/tasks/${t.id}/cancel`, undefined, { origin: "https://evil.example" });
    expectError(foreign, 403, "FOREIGN_ORIGIN");
    expect((await env.client.getTask(t.id))?.status).toBe("PENDING");
    const sameSite = await call(d, "POST", `/api/tasks/${t.id}/cancel`, undefined, { origin: ORIGIN });
    expect(sameSite.status).toBe(200);
  });

  it("refuses a form post (a cross-site form cannot send JSON without a preflight)", async () => {
    const d = createDashboard({ client: env.client, logger: quiet });
    const a = await call(d, "POST", "/api/tasks", "name=job", { "content-type": "text/plain" });
    expectError(a, 415, "UNSUPPORTED_MEDIA_TYPE");
  });
});

describe("every response", () => {
  it("carries the security headers and JSON's content type, errors and 404s included", async () => {
    const d = make();
    const answers = [
      await call(d, "GET", "/api/stats"),
      await call(d, "GET", "/api/stats", undefined, {}),
      await call(d, "GET", "/api/nothing"),
      await call(d, "GET", "/api/tasks/1"),
      await call(d, "POST", "/api/tasks", "{bad"),
    ];
    for (const a of answers) {
      expectSecurityHeaders(a);
      expect(a.headers.get("content-type")).toBe("application/json; charset=utf-8");
      expect(a.headers.get("cache-control")).toBe("no-store");
    }
    expectSecurityHeaders(await call(d, "GET", "/"));
  });
});

describe("createDashboard's options", () => {
  it("refuses a short token without showing it, unknown options, and a bad base path or origin", () => {
    let err: unknown;
    try {
      createDashboard({ client: env.client, token: "short-secret" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as Error).message).not.toContain("short-secret");
    expect(() => createDashboard({ client: env.client, token: TOKEN, port: 1 } as never)).toThrow(InvalidOptionError);
    expect(() => createDashboard({ client: env.client, token: TOKEN, basePath: "admin" })).toThrow(/basePath/);
    expect(() => createDashboard({ client: env.client, token: TOKEN, basePath: "/a/../b" })).toThrow(/basePath/);
    expect(() => createDashboard({ client: env.client, token: TOKEN, allowedOrigins: ["https://x.com/path"] })).toThrow(
      /allowedOrigins/,
    );
  });

  it("compares secrets of any length", () => {
    expect(sameSecret(TOKEN, TOKEN)).toBe(true);
    expect(sameSecret(TOKEN, TOKEN.slice(0, -1))).toBe(false);
    expect(sameSecret("", TOKEN)).toBe(false);
  });
});

import { Hono } from "hono";
import type { PurgeTasksOptions, SkiplockClient } from "../client.js";
import { TaskNotFoundError } from "../errors.js";
import type { Logger } from "../logger.js";
import { validateTaskId, type TaskOptions } from "../task.js";
import { SESSION_COOKIE, SESSION_SECONDS, type Credentials } from "./auth.js";
import { expectationFrom, MAX_BULK_IDS, runTaskAction, TASK_ACTIONS, type TaskAction } from "./actions.js";
import { readJsonBody } from "./body.js";
import { cookieOf, guard, type AuthedBy, type GuardOptions } from "./guard.js";
import { errorStatus, json, refuse } from "./responses.js";
import { StatsCache } from "./stats.js";
import { triggerRoutes, type TriggerContext } from "./trigger-routes.js";

export interface ApiContext extends TriggerContext {
  client: SkiplockClient;
  guard: GuardOptions;
  credentials: Credentials | null;
  /** The path the session cookie is scoped to. */
  cookiePath: string;
  /** Mark the cookie Secure: always, or when the request came over https ("auto"). */
  secureCookie: boolean | "auto";
  logger: Logger;
}

type Env = { Variables: { authedBy: AuthedBy } };

/** A query parameter as listTasks takes it: absent, or its value (a comma-separated or repeated status). */
function listQuery(url: URL): Record<string, unknown> {
  const q: Record<string, unknown> = {};
  const statuses = url.searchParams
    .getAll("status")
    .flatMap((s) => s.split(","))
    .filter((s) => s !== "");
  if (statuses.length > 0) q.status = statuses;
  for (const key of ["queue", "name", "after"]) {
    const v = url.searchParams.get(key);
    if (v !== null && v !== "") q[key] = v;
  }
  const limit = url.searchParams.get("limit");
  if (limit !== null && limit !== "") {
    if (!/^\d{1,7}$/.test(limit)) throw refuse(400, "INVALID_OPTION", "invalid option limit: expected an integer");
    q.limit = Number(limit);
  }
  return q;
}

/** createTask's options as JSON carries them: `runAt` as an ISO string; never `transaction`. */
function taskOptions(value: unknown): TaskOptions {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw refuse(400, "BAD_REQUEST", "options must be a JSON object");
  }
  const o = { ...(value as Record<string, unknown>) };
  if ("transaction" in o) throw refuse(400, "BAD_REQUEST", "options.transaction cannot be given over HTTP");
  if (typeof o.runAt === "string") {
    const at = new Date(o.runAt);
    if (Number.isNaN(at.getTime())) throw refuse(400, "BAD_REQUEST", "options.runAt must be an ISO date");
    o.runAt = at;
  }
  return o as TaskOptions;
}

function cookieHeader(ctx: ApiContext, req: Request, value: string, maxAge: number): string {
  const secure = ctx.secureCookie === "auto" ? new URL(req.url).protocol === "https:" : ctx.secureCookie;
  return `${SESSION_COOKIE}=${value}; Path=${ctx.cookiePath}; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
}

/** The JSON API, mounted under `<basePath>/api`. */
export function apiRoutes(ctx: ApiContext): Hono<Env> {
  const { client } = ctx;
  const stats = new StatsCache(client, ctx.guard.readOnly);
  const api = new Hono<Env>();

  api.use("*", async (c, next) => {
    // Signing in and out needs no credentials, but a foreign Origin is refused (login CSRF).
    const signing = c.req.method !== "GET" && c.req.path.endsWith("/api/session");
    c.set("authedBy", guard(c.req.raw, ctx.guard, signing ? "session" : "api"));
    await next();
  });

  api.post("/session", async (c) => {
    const creds = ctx.credentials;
    if (creds === null) return json({ authenticated: true, auth: "none", readOnly: ctx.guard.readOnly });
    const body = await readJsonBody(c.req.raw);
    if (typeof body.token !== "string" || !creds.tokenMatches(body.token)) {
      throw refuse(401, "UNAUTHORIZED", "wrong token");
    }
    const session = creds.issue();
    return json(
      { authenticated: true, auth: "token", csrfToken: session.csrfToken, expiresAt: session.expiresAt },
      200,
      { "set-cookie": cookieHeader(ctx, c.req.raw, session.cookie, SESSION_SECONDS) },
    );
  });
  api.get("/session", (c) => {
    const creds = ctx.credentials;
    const cookie = cookieOf(c.req.raw, SESSION_COOKIE);
    return json({
      authenticated: true,
      auth: creds === null ? "none" : "token",
      readOnly: ctx.guard.readOnly,
      ...(creds !== null && cookie !== null && creds.verify(cookie) ? { csrfToken: creds.csrfFor(cookie) } : {}),
    });
  });
  api.delete("/session", (c) =>
    json({ authenticated: false }, 200, { "set-cookie": cookieHeader(ctx, c.req.raw, "", 0) }),
  );

  api.get("/stats", async () => json(await stats.get()));

  api.get("/tasks", async (c) => json(await client.listTasks(listQuery(new URL(c.req.url)))));
  api.post("/tasks", async (c) => {
    const body = await readJsonBody(c.req.raw);
    if (typeof body.name !== "string") throw refuse(400, "BAD_REQUEST", "name (a registered task name) is required");
    if (body.args !== undefined && !Array.isArray(body.args)) {
      throw refuse(400, "BAD_REQUEST", "args must be an array (the handler's parameters)");
    }
    const task = await client.createTask(
      body.name,
      (body.args as unknown[] | undefined) ?? [],
      taskOptions(body.options),
    );
    return json({ task }, 201);
  });

  api.post("/tasks/bulk", async (c) => {
    const body = await readJsonBody(c.req.raw);
    const action = body.action as TaskAction;
    if (!TASK_ACTIONS.includes(action)) {
      throw refuse(400, "BAD_REQUEST", `action must be one of ${TASK_ACTIONS.join(", ")}`);
    }
    const ids = body.ids;
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_BULK_IDS) {
      throw refuse(400, "BAD_REQUEST", `ids must be an array of 1 to ${MAX_BULK_IDS} task ids`);
    }
    const valid = ids.map((id) => validateTaskId(id));
    // `expect`: the status the caller saw the tasks in (a list of one status); each is refused if it is not.
    const expect = expectationFrom(body.expect, undefined);
    const results: ({ id: string; ok: true; status: string } | { id: string; ok: false; error: object })[] = [];
    const refused: Record<string, number> = {};
    // One at a time: each is its own compare-and-set, and a bulk action should not take the whole pool.
    for (const id of new Set(valid)) {
      try {
        const task = await runTaskAction(client, action, id, expect);
        results.push({ id, ok: true, status: task.status });
      } catch (err) {
        const e = errorStatus(err);
        if (e.status >= 500) throw err;
        refused[e.code] = (refused[e.code] ?? 0) + 1;
        results.push({ id, ok: false, error: { code: e.code, message: e.message } });
      }
    }
    const done = results.filter((r) => r.ok).length;
    return json({ action, results, counts: { ok: done, refused: results.length - done, byCode: refused } });
  });

  api.get("/tasks/:id", async (c) => {
    const id = validateTaskId(c.req.param("id"));
    const task = await client.getTask(id);
    if (!task) throw new TaskNotFoundError(id);
    return json({ task });
  });
  // `?expect=STATUS&expectAttempt=N` (or the same fields in a POST's JSON body): act only on the task as last seen.
  api.delete("/tasks/:id", async (c) => {
    const id = validateTaskId(c.req.param("id"));
    const expect = expectationFrom(c.req.query("expect"), c.req.query("expectAttempt"));
    return json({ task: await runTaskAction(client, "delete", id, expect) });
  });
  for (const action of ["retry", "cancel", "run-now"] as const) {
    api.post(`/tasks/:id/${action}`, async (c) => {
      const id = validateTaskId(c.req.param("id"));
      const body = await readJsonBody(c.req.raw);
      const expect = expectationFrom(
        body.expect ?? c.req.query("expect"),
        body.expectAttempt ?? c.req.query("expectAttempt"),
      );
      return json({ task: await runTaskAction(client, action, id, expect) });
    });
  }

  api.post("/purge", async (c) => {
    const body = await readJsonBody(c.req.raw);
    const { olderThanDays, statuses, dryRun, batchSize } = body as unknown as PurgeTasksOptions;
    if (dryRun !== undefined && typeof dryRun !== "boolean") {
      throw refuse(400, "INVALID_OPTION", "invalid option dryRun: expected true or false");
    }
    // The client checks each value (days, statuses, batch size) and names the wrong one.
    const r = await client.purgeTasks({
      olderThanDays,
      ...(statuses !== undefined ? { statuses } : {}),
      ...(batchSize !== undefined ? { batchSize } : {}),
      dryRun: dryRun ?? false,
    });
    return json(r);
  });

  api.get("/workers", async () => json({ workers: await client.listWorkers() }));

  api.get("/schedules", async () => json({ schedules: await client.listSchedules() }));
  api.post("/schedules/:name/pause", async (c) => json({ schedule: await client.pauseSchedule(c.req.param("name")) }));
  api.post("/schedules/:name/resume", async (c) =>
    json({ schedule: await client.resumeSchedule(c.req.param("name")) }),
  );
  api.post("/schedules/:name/trigger", async (c) =>
    json({ task: await client.triggerSchedule(c.req.param("name")) }, 201),
  );

  // api/run, api/run-one, api/execute/:id: behind the guard above, and only when the dashboard was given tasks.
  api.route("/", triggerRoutes(ctx));

  return api;
}

import type { Context, Hono } from "hono";
import { Hono as Router } from "hono";
import { TaskNotFoundError } from "../../errors.js";
import { validateTaskId } from "../../task.js";
import { MAX_BULK_IDS, TASK_ACTIONS, type TaskAction } from "../actions.js";
import type { ApiContext } from "../api.js";
import { SESSION_COOKIE, SESSION_SECONDS } from "../auth.js";
import { cookieOf, CSRF_FIELD, guard } from "../guard.js";
import { errorStatus, refuse } from "../responses.js";
import { runTaskAction } from "./act.js";
import {
  bulkConfirmPage,
  bulkResultPage,
  DONE_NOTICES,
  errorPage,
  loginPage,
  purgePage,
  type BulkOutcome,
  type PurgeForm,
} from "./action-pages.js";
import { asset } from "./assets.js";
import { readForm } from "./form.js";
import type { Html, PageEnv } from "./html.js";
import type { Notice } from "./layout.js";
import { overviewPage } from "./overview.js";
import { PageDataCache } from "./page-data.js";
import { taskPage, listOf } from "./task-detail.js";
import {
  isListView,
  LIST_PAGE_SIZE,
  LIST_VIEWS,
  listPage,
  MAX_LIST_PAGE_SIZE,
  readListPage,
  type ListQuery,
} from "./task-list.js";
import { schedulesPage, workersPage } from "./workers-schedules.js";

/*
 * The HTML pages, beside the API under the base path. Server-rendered (hono/html escapes every value), usable without
 * JavaScript: links, GET filter forms, and forms that POST with the session's CSRF token in a hidden field; an action
 * answers with a redirect to the page that shows its outcome (POST, redirect, GET), or with the page itself saying
 * why it was refused. The one script (assets/app.js) only adds live refresh and "select all".
 *
 * Access is the API's (guard.ts): a page signed in by cookie, or a bearer token; without a token configured, loopback
 * hosts only. A page asked for without a session redirects to the sign-in page.
 */

/** Messages for `?done=` after a redirect: fixed texts, so a link cannot make the page say anything else. */
const REDIRECT_NOTICES: Record<string, Notice> = {
  ...Object.fromEntries(Object.entries(DONE_NOTICES).map(([k, text]) => [k, { kind: "ok" as const, text }])),
  "none-selected": { kind: "error", text: "Select at least one task first." },
};

export interface PageRoutes {
  /** The overview's numbers, shared with the event stream (which hears the queues they name). */
  data: PageDataCache;
}

export function pageRoutes(app: Hono, ctx: ApiContext): PageRoutes {
  const { client, credentials } = ctx;
  const readOnly = ctx.guard.readOnly;
  const data = new PageDataCache(client, readOnly);
  const pages = new Router();
  const cookieBase = ctx.cookiePath === "/" ? "" : ctx.cookiePath;

  const envOf = (req: Request): PageEnv => {
    const cookie = cookieOf(req, SESSION_COOKIE);
    const csrf =
      credentials !== null && cookie !== null && credentials.verify(cookie) ? credentials.csrfFor(cookie) : null;
    const js = asset("app.js")!;
    const css = asset("app.css")!;
    return {
      base: cookieBase,
      csrf,
      readOnly,
      signedIn: credentials !== null,
      assets: {
        js: `${cookieBase}/assets/app.js?v=${js.version}`,
        css: `${cookieBase}/assets/app.css?v=${css.version}`,
      },
      now: Date.now(),
    };
  };

  const send = async (body: Html, status = 200): Promise<Response> =>
    new Response(String(await body), {
      status,
      headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
    });

  const redirect = (to: string): Response =>
    new Response(null, { status: 303, headers: { location: to, "cache-control": "no-store" } });

  const loginUrl = (req: Request) => {
    const u = new URL(req.url);
    return `${cookieBase}/login?next=${encodeURIComponent(u.pathname + u.search)}`;
  };

  /** A page's path to come back to: one under the base path, never another site (`//host`, `\`). */
  const safeBack = (value: string | null | undefined, fallback: string): string => {
    if (typeof value !== "string" || value.length > 2000) return fallback;
    const ok =
      (value === cookieBase || value.startsWith(`${cookieBase}/`)) &&
      value.startsWith("/") &&
      !value.startsWith("//") &&
      !/[\\\s]/.test(value);
    return ok ? value : fallback;
  };

  const withDone = (to: string, done: string): string => {
    const u = new URL(to, "http://x");
    u.searchParams.set("done", done);
    return u.pathname + u.search;
  };

  const noticesOf = (c: Context): Notice[] => {
    const done = c.req.query("done");
    const n = done === undefined ? undefined : REDIRECT_NOTICES[done];
    return n ? [n] : [];
  };

  /** Checks a page request (guard.ts); a GET without a session goes to the sign-in page. */
  const viewer = (c: Context): PageEnv | Response => {
    try {
      guard(c.req.raw, ctx.guard, "api");
    } catch (err) {
      if (errorStatus(err).status === 401) return redirect(loginUrl(c.req.raw));
      throw err;
    }
    return envOf(c.req.raw);
  };

  /** Checks a form post: signed in, then (once the form is read) its CSRF field and Origin, and not read-only. */
  const poster = async (c: Context): Promise<{ env: PageEnv; form: URLSearchParams }> => {
    const req = c.req.raw;
    if (credentials !== null && req.headers.get("authorization") === null) {
      const cookie = cookieOf(req, SESSION_COOKIE);
      if (cookie === null || !credentials.verify(cookie)) {
        throw refuse(401, "UNAUTHORIZED", "your session has ended: sign in again, then repeat the action");
      }
    }
    const form = await readForm(req);
    guard(req, ctx.guard, "api", form.get(CSRF_FIELD));
    return { env: envOf(req), form };
  };

  pages.onError(async (err, c) => {
    const e = errorStatus(err);
    if (e.status === 500) {
      ctx.logger.error("dashboard page failed", { error: err instanceof Error ? err.message : String(err) });
    }
    const env = envOf(c.req.raw);
    const page = errorPage(env, e.status, e.message);
    return send(page, e.status);
  });

  pages.get("/assets/:file", (c) => {
    const a = asset(c.req.param("file"));
    if (a === null) throw refuse(404, "NOT_FOUND", "no such file");
    return new Response(a.body, {
      headers: { "content-type": a.type, "cache-control": "public, max-age=31536000, immutable" },
    });
  });

  pages.get("/login", (c) => {
    const env = envOf(c.req.raw);
    if (credentials === null) return redirect(env.base || "/");
    return send(loginPage(env, safeBack(c.req.query("next"), env.base || "/"), null));
  });
  pages.post("/login", async (c) => {
    const req = c.req.raw;
    guard(req, ctx.guard, "session");
    const env = envOf(req);
    const form = await readForm(req);
    const next = safeBack(form.get("next"), env.base || "/");
    if (credentials === null) return redirect(next);
    const token = form.get("token");
    if (token === null || !credentials.tokenMatches(token)) {
      return send(loginPage(env, next, "Wrong token."), 401);
    }
    const session = credentials.issue();
    const res = redirect(next);
    res.headers.set("set-cookie", sessionCookie(ctx, req, session.cookie, SESSION_SECONDS));
    return res;
  });
  pages.post("/logout", async (c) => {
    const req = c.req.raw;
    guard(req, ctx.guard, "session");
    const res = redirect(`${cookieBase}/login`);
    res.headers.set("set-cookie", sessionCookie(ctx, req, "", 0));
    return res;
  });

  pages.get("/", async (c) => {
    const env = viewer(c);
    if (env instanceof Response) return env;
    const [d, workers] = await Promise.all([data.get(), client.listWorkers()]);
    return send(overviewPage(env, d, workers));
  });

  pages.get("/tasks/:view", async (c) => {
    const env = viewer(c);
    if (env instanceof Response) return env;
    const name = c.req.param("view");
    if (!isListView(name)) throw refuse(404, "NOT_FOUND", `no task list named ${name}`);
    const id = (c.req.query("id") ?? "").trim();
    if (id !== "") return redirect(`${env.base}/task/${encodeURIComponent(validateTaskId(id))}`);
    const limitText = c.req.query("limit");
    const q: ListQuery = {
      queue: (c.req.query("queue") ?? "").trim(),
      name: (c.req.query("name") ?? "").trim(),
      after: c.req.query("after") ?? "",
      limit: LIST_PAGE_SIZE,
    };
    if (limitText !== undefined && /^\d{1,4}$/.test(limitText)) {
      q.limit = Math.min(Math.max(Number(limitText), 1), MAX_LIST_PAGE_SIZE);
    }
    const notices = noticesOf(c);
    let page: Awaited<ReturnType<typeof readListPage>> = { tasks: [], next: null };
    let status = 200;
    try {
      page = await readListPage(client, LIST_VIEWS[name], q);
    } catch (err) {
      const e = errorStatus(err);
      if (e.status !== 400) throw err;
      notices.push({ kind: "error", text: e.message });
      status = 400;
    }
    return send(listPage(env, name, q, page, await data.get(), notices), status);
  });

  pages.get("/task/:id", async (c) => {
    const env = viewer(c);
    if (env instanceof Response) return env;
    const id = validateTaskId(c.req.param("id"));
    const task = await client.getTask(id);
    if (!task) throw new TaskNotFoundError(id);
    return send(taskPage(env, task, await data.get(), noticesOf(c)));
  });

  pages.post("/task/:id/:action", async (c) => {
    const { env } = await poster(c);
    const id = validateTaskId(c.req.param("id"));
    const action = c.req.param("action") as TaskAction;
    if (!TASK_ACTIONS.includes(action)) throw refuse(404, "NOT_FOUND", `no task action named ${action}`);
    try {
      const task = await runTaskAction(client, action, id);
      if (action === "delete") return redirect(withDone(`${env.base}/tasks/${listOf(task, env.now)}`, "delete"));
      return redirect(withDone(`${env.base}/task/${id}`, action));
    } catch (err) {
      const e = errorStatus(err);
      if (e.status !== 409) throw err;
      // The task changed state since the page showed it: show it as it is now, saying why nothing was done.
      const task = await client.getTask(id);
      if (!task) throw err;
      return send(taskPage(env, task, await data.get(), [{ kind: "error", text: e.message }], false), 409);
    }
  });

  pages.post("/tasks/bulk", async (c) => {
    const { env, form } = await poster(c);
    const back = safeBack(form.get("back"), `${env.base}/tasks/failed`);
    const action = form.get("action") as TaskAction;
    if (!TASK_ACTIONS.includes(action))
      throw refuse(400, "BAD_REQUEST", `choose an action: ${TASK_ACTIONS.join(", ")}`);
    const ids = [...new Set(form.getAll("id"))];
    if (ids.length === 0) return redirect(withDone(back, "none-selected"));
    if (ids.length > MAX_BULK_IDS) throw refuse(400, "BAD_REQUEST", `at most ${MAX_BULK_IDS} tasks at once`);
    const valid = ids.map((id) => validateTaskId(id));
    if (form.get("confirm") !== "yes") return send(bulkConfirmPage(env, action, valid, back));
    const outcome: BulkOutcome = { action, done: [], refused: [] };
    // One at a time: each its own compare-and-set, and a bulk action should not take the whole pool.
    for (const id of valid) {
      try {
        await runTaskAction(client, action, id);
        outcome.done.push(id);
      } catch (err) {
        const e = errorStatus(err);
        if (e.status >= 500) throw err;
        outcome.refused.push({ id, message: e.message });
      }
    }
    return send(bulkResultPage(env, outcome, back));
  });

  pages.get("/workers", async (c) => {
    const env = viewer(c);
    if (env instanceof Response) return env;
    const [workers, d] = await Promise.all([client.listWorkers(), data.get()]);
    return send(workersPage(env, workers, d));
  });

  pages.get("/schedules", async (c) => {
    const env = viewer(c);
    if (env instanceof Response) return env;
    const [list, d] = await Promise.all([client.listSchedules(), data.get()]);
    return send(schedulesPage(env, list, d, noticesOf(c)));
  });
  pages.post("/schedules/:name/:action", async (c) => {
    const { env } = await poster(c);
    const name = c.req.param("name");
    const action = c.req.param("action");
    try {
      if (action === "pause") await client.pauseSchedule(name);
      else if (action === "resume") await client.resumeSchedule(name);
      else if (action === "trigger") {
        const task = await client.triggerSchedule(name);
        return redirect(withDone(`${env.base}/task/${task.id}`, "trigger"));
      } else throw refuse(404, "NOT_FOUND", `no schedule action named ${action}`);
    } catch (err) {
      const e = errorStatus(err);
      if (e.status >= 500 || e.code === "NOT_FOUND") throw err;
      const [list, d] = await Promise.all([client.listSchedules(), data.get()]);
      return send(schedulesPage(env, list, d, [{ kind: "error", text: e.message }]), e.status);
    }
    return redirect(withDone(`${env.base}/schedules`, action));
  });

  pages.get("/purge", (c) => {
    const env = viewer(c);
    if (env instanceof Response) return env;
    if (env.readOnly) throw refuse(403, "READ_ONLY", "this dashboard is read-only: actions are refused");
    return send(purgePage(env, { olderThanDays: "30", statuses: ["COMPLETED", "CANCELLED"] }));
  });
  pages.post("/purge", async (c) => {
    const { env, form } = await poster(c);
    const f: PurgeForm = { olderThanDays: (form.get("olderThanDays") ?? "").trim(), statuses: form.getAll("status") };
    const days = Number(f.olderThanDays);
    try {
      if (f.olderThanDays === "" || !Number.isFinite(days)) {
        throw refuse(400, "INVALID_OPTION", "give the age in days, such as 30 or 0.5");
      }
      const confirmed = form.get("confirm") === "yes";
      const r = await client.purgeTasks({
        olderThanDays: days,
        statuses: f.statuses as PurgeOptionsStatuses,
        dryRun: !confirmed,
      });
      if (!confirmed) return send(purgePage(env, f, [], r.deleted));
      return send(purgePage(env, f, [{ kind: "ok", text: `Deleted ${r.deleted.toLocaleString("en-US")} tasks.` }]));
    } catch (err) {
      const e = errorStatus(err);
      if (e.status !== 400) throw err;
      return send(purgePage(env, f, [{ kind: "error", text: e.message }]), 400);
    }
  });

  app.route("/", pages);
  return { data };
}

type PurgeOptionsStatuses = Parameters<ApiContext["client"]["purgeTasks"]>[0]["statuses"];

function sessionCookie(ctx: ApiContext, req: Request, value: string, maxAge: number): string {
  const secure = ctx.secureCookie === "auto" ? new URL(req.url).protocol === "https:" : ctx.secureCookie;
  return `${SESSION_COOKIE}=${value}; Path=${ctx.cookiePath}; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
}

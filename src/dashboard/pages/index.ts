import { Hono } from "hono";
import { TaskNotFoundError } from "../../errors.js";
import { validateTaskId } from "../../task.js";
import type { ApiContext } from "../api.js";
import { errorStatus, refuse } from "../responses.js";
import { noticesOf, PageAccess, redirect, send } from "./access.js";
import { actionRoutes } from "./action-routes.js";
import { errorPage, purgePage } from "./action-pages.js";
import { asset } from "./assets.js";
import { overviewPage } from "./overview.js";
import { PageDataCache } from "./page-data.js";
import { signInRoutes } from "./sign-in-routes.js";
import { taskPage } from "./task-detail.js";
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
 * JavaScript: links, GET filter forms, and forms that POST with the session's CSRF token in a hidden field
 * (action-routes.ts). The one script (assets/app.js) only adds the live redraw and "select all".
 *
 * Access is the API's (guard.ts, through access.ts): a session cookie or a bearer token; without a token configured,
 * loopback hosts only. A page asked for without a session redirects to the sign-in page (sign-in-routes.ts).
 */

export interface PageRoutes {
  /** The overview's numbers, shared with the event stream (which hears the queues they name). */
  data: PageDataCache;
}

export function pageRoutes(app: Hono, ctx: ApiContext): PageRoutes {
  const { client } = ctx;
  const data = new PageDataCache(client, ctx.guard.readOnly);
  const access = new PageAccess(ctx);
  const pages = new Hono();

  pages.onError(async (err, c) => {
    const e = errorStatus(err);
    if (e.status === 500) {
      ctx.logger.error("dashboard page failed", { error: err instanceof Error ? err.message : String(err) });
    }
    return send(errorPage(access.envOf(c.req.raw), e.status, e.message), e.status);
  });

  pages.get("/assets/:file", (c) => {
    const a = asset(c.req.param("file"));
    if (a === null) throw refuse(404, "NOT_FOUND", "no such file");
    // The pages link them with their content hash: a changed file has a new URL.
    return new Response(a.body, {
      headers: { "content-type": a.type, "cache-control": "public, max-age=31536000, immutable" },
    });
  });

  signInRoutes(pages, ctx, access);

  pages.get("/", async (c) => {
    const env = access.viewer(c);
    if (env instanceof Response) return env;
    const [d, workers] = await Promise.all([data.get(), client.listWorkers()]);
    return send(overviewPage(env, d, workers));
  });

  pages.get("/tasks/:view", async (c) => {
    const env = access.viewer(c);
    if (env instanceof Response) return env;
    const name = c.req.param("view");
    if (!isListView(name)) throw refuse(404, "NOT_FOUND", `no task list named ${name}`);
    const id = (c.req.query("id") ?? "").trim();
    if (id !== "") return redirect(`${env.base}/task/${validateTaskId(id)}`);
    const limit = c.req.query("limit") ?? "";
    const q: ListQuery = {
      queue: (c.req.query("queue") ?? "").trim(),
      name: (c.req.query("name") ?? "").trim(),
      after: c.req.query("after") ?? "",
      limit: /^\d{1,4}$/.test(limit) ? Math.min(Math.max(Number(limit), 1), MAX_LIST_PAGE_SIZE) : LIST_PAGE_SIZE,
    };
    const notices = noticesOf(c);
    let page: Awaited<ReturnType<typeof readListPage>> = { tasks: [], next: null };
    let status = 200;
    try {
      page = await readListPage(client, LIST_VIEWS[name], q);
    } catch (err) {
      // A bad filter (a queue name with spaces, a malformed `after`) is said on the page, not as an error page.
      const e = errorStatus(err);
      if (e.status !== 400) throw err;
      notices.push({ kind: "error", text: e.message });
      status = 400;
    }
    return send(listPage(env, name, q, page, await data.get(), notices), status);
  });

  pages.get("/task/:id", async (c) => {
    const env = access.viewer(c);
    if (env instanceof Response) return env;
    const id = validateTaskId(c.req.param("id"));
    const task = await client.getTask(id);
    if (!task) throw new TaskNotFoundError(id);
    return send(taskPage(env, task, await data.get(), noticesOf(c)));
  });

  pages.get("/workers", async (c) => {
    const env = access.viewer(c);
    if (env instanceof Response) return env;
    const [workers, d] = await Promise.all([client.listWorkers(), data.get()]);
    return send(workersPage(env, workers, d));
  });

  pages.get("/schedules", async (c) => {
    const env = access.viewer(c);
    if (env instanceof Response) return env;
    const [list, d] = await Promise.all([client.listSchedules(), data.get()]);
    return send(schedulesPage(env, list, d, noticesOf(c)));
  });

  pages.get("/purge", (c) => {
    const env = access.viewer(c);
    if (env instanceof Response) return env;
    if (env.readOnly) throw refuse(403, "READ_ONLY", "this dashboard is read-only: actions are refused");
    return send(purgePage(env, { olderThanDays: "30", statuses: ["COMPLETED", "CANCELLED"] }));
  });

  actionRoutes(pages, ctx, access, data);

  app.route("/", pages);
  return { data };
}

import { Hono } from "hono";
import { clientInternals } from "../client.js";
import { apiRoutes, type ApiContext } from "./api.js";
import { DashboardEvents, EVENT_STREAM_HEADERS } from "./events.js";
import { guard } from "./guard.js";
import { metricsRoute, type MetricsRouteContext } from "./metrics-route.js";
import { pageRoutes } from "./pages/index.js";
import { errorResponse, refuse } from "./responses.js";

/** The dashboard's routes under its base path: the API under `api/`, the event stream, the pages beside them. */
export function buildRouter(basePath: string, ctx: ApiContext & MetricsRouteContext): Hono {
  const root = new Hono();
  const app = basePath === "/" ? root : root.basePath(basePath);
  app.route("/api", apiRoutes(ctx));
  metricsRoute(app, ctx);
  const { data } = pageRoutes(app, ctx);
  const events = new DashboardEvents({
    notifier: clientInternals(ctx.client).notifier,
    logger: ctx.logger,
    queues: async () => Object.keys((await data.get()).stats.counts.queues),
  });
  app.get("/api/events", (c) => {
    guard(c.req.raw, ctx.guard, "api");
    // Hono routes HEAD here too and drops the body unread: only a GET opens a stream.
    if (c.req.raw.method !== "GET") return new Response(null, { headers: EVENT_STREAM_HEADERS });
    return events.stream(c.req.raw.signal);
  });
  // The pages link to the base path without its slash; one typed with it lands there too.
  if (basePath !== "/") root.get(`${basePath}/`, (c) => c.redirect(basePath, 308));
  root.notFound(() => errorResponse(refuse(404, "NOT_FOUND", "no such route"), ctx.logger));
  root.onError((err) => errorResponse(err, ctx.logger));
  return root;
}

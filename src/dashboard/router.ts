import { Hono } from "hono";
import { apiRoutes, type ApiContext } from "./api.js";
import { metricsRoute, type MetricsRouteContext } from "./metrics-route.js";
import { pageRoutes } from "./pages/index.js";
import { errorResponse, refuse } from "./responses.js";

/** The dashboard's routes under its base path: the API under `api/`, the pages beside it. */
export function buildRouter(basePath: string, ctx: ApiContext & MetricsRouteContext): Hono {
  const root = new Hono();
  const app = basePath === "/" ? root : root.basePath(basePath);
  app.route("/api", apiRoutes(ctx));
  metricsRoute(app, ctx);
  pageRoutes(app);
  root.notFound(() => errorResponse(refuse(404, "NOT_FOUND", "no such route"), ctx.logger));
  root.onError((err) => errorResponse(err, ctx.logger));
  return root;
}

import type { Hono } from "hono";

/*
 * The HTML pages come here: each page a route on the dashboard's router beside the API, with its static assets
 * served from this folder (no inline script: the Content-Security-Policy forbids it). Until then the base path
 * answers with a pointer to the API.
 */
export function pageRoutes(app: Hono): void {
  app.get("/", (c) =>
    c.text("skiplock dashboard: the pages are not built yet; the JSON API is under api/ (see api/stats).\n"),
  );
}

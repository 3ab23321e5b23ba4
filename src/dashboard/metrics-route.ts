import type { Hono } from "hono";
import { Registry } from "prom-client";
import { clientInternals, type SkiplockClient } from "../client.js";
import type { Logger } from "../logger.js";
import { registerDatabaseGauges } from "../metrics-database.js";
import type { Credentials } from "./auth.js";
import { guard, type GuardOptions } from "./guard.js";
import { refuse } from "./responses.js";

export interface MetricsRouteContext {
  client: SkiplockClient;
  guard: GuardOptions;
  /** A scraper's own token (`metricsToken`), so Prometheus never holds the dashboard's; null: the dashboard's rules. */
  metricsCredentials: Credentials | null;
  logger: Logger;
}

/** Seconds a reading serves every scrape: many scrapers of a big table cost one capped count every few seconds. */
const CACHE_SECONDS = 5;

/**
 * `GET <basePath>/metrics`: the database's gauges (`skiplock_tasks`, `skiplock_queue_oldest_due_seconds`) in
 * Prometheus text, for a deployment that scrapes the dashboard rather than each worker. It answers a bearer with the
 * metrics token, or whatever the API answers (the dashboard's token, a session, loopback without a token).
 */
export function metricsRoute(app: Hono, ctx: MetricsRouteContext): void {
  let registry: Registry | null = null;
  const { store } = clientInternals(ctx.client);
  app.get("/metrics", async (c) => {
    const authorization = c.req.header("authorization");
    const byMetricsToken =
      ctx.metricsCredentials !== null &&
      authorization !== undefined &&
      ctx.metricsCredentials.bearerMatches(authorization);
    if (!byMetricsToken) {
      if (ctx.metricsCredentials !== null && ctx.guard.credentials === null) {
        throw refuse(401, "UNAUTHORIZED", "wrong token: send Authorization: Bearer <metrics token>");
      }
      guard(c.req.raw, ctx.guard, "api");
    }
    if (registry === null) {
      registry = new Registry();
      registerDatabaseGauges([registry], { db: () => store, queues: () => [], logger: ctx.logger }, CACHE_SECONDS);
    }
    return new Response(await registry.metrics(), {
      headers: { "content-type": registry.contentType, "cache-control": "no-store" },
    });
  });
}

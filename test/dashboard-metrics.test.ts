import { describe, expect, it } from "vitest";
import { createDashboard, InvalidOptionError, type Dashboard } from "../src/index.js";
import { ORIGIN, TOKEN } from "./dashboard-fixture.js";
import { quiet } from "./helpers.js";
import { parse, valueOf } from "./prometheus-text.js";
import { schemaFixture } from "./schema-fixture.js";

const env = schemaFixture({ label: "dashboard_metrics" });
const METRICS_TOKEN = "scrape-token-42";

async function scrape(d: Dashboard, headers: Record<string, string> = {}, origin = ORIGIN) {
  const res = await d.fetch(new Request(`${origin}/metrics`, { headers }));
  return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
}

describe("GET metrics on the dashboard", () => {
  it("serves the database gauges in Prometheus text, counted per queue and status", async () => {
    await env.client.createTask("m.a", [], { queue: "mq" });
    await env.client.createTask("m.b", [], { queue: "mq" });
    const d = createDashboard({ client: env.client, logger: quiet });
    const r = await scrape(d);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const samples = parse(r.text);
    expect(valueOf(samples, "skiplock_tasks", { queue: "mq", status: "PENDING" })).toBe(2);
    expect(valueOf(samples, "skiplock_tasks", { queue: "mq", status: "FAILED" })).toBe(0);
    expect(valueOf(samples, "skiplock_queue_oldest_due_seconds", { queue: "mq" })).toBeGreaterThanOrEqual(0);
  });

  it("without any token answers only requests addressed to loopback", async () => {
    const d = createDashboard({ client: env.client, logger: quiet });
    const r = await scrape(d, {}, "http://ops.example.com");
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text).error.code).toBe("LOOPBACK_ONLY");
  });

  it("with tokens: the metrics token or the dashboard's token, nothing else", async () => {
    const d = createDashboard({ client: env.client, token: TOKEN, metricsToken: METRICS_TOKEN, logger: quiet });
    expect((await scrape(d)).status).toBe(401);
    expect((await scrape(d, { authorization: "Bearer wrong-token-123" })).status).toBe(401);
    expect((await scrape(d, { authorization: `Bearer ${METRICS_TOKEN}` })).status).toBe(200);
    expect((await scrape(d, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    // Beyond loopback too: a token is what counts there.
    expect((await scrape(d, { authorization: `Bearer ${METRICS_TOKEN}` }, "http://ops.example.com")).status).toBe(200);
    // The metrics token opens nothing else.
    const api = await d.fetch(
      new Request(`${ORIGIN}/api/stats`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } }),
    );
    expect(api.status).toBe(401);
  });

  it("a metrics token alone is required even on loopback", async () => {
    const d = createDashboard({ client: env.client, metricsToken: METRICS_TOKEN, logger: quiet });
    expect((await scrape(d)).status).toBe(401);
    expect((await scrape(d, { authorization: `Bearer ${METRICS_TOKEN}` })).status).toBe(200);
  });

  it("refuses a short metrics token at creation, without echoing it", () => {
    expect(() => createDashboard({ client: env.client, metricsToken: "short" })).toThrow(InvalidOptionError);
    expect(() => createDashboard({ client: env.client, metricsToken: "short" })).not.toThrow(/short/);
  });
});

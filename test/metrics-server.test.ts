// GET /metrics from serveMetrics and from `run-worker --metrics-port`: loopback by default, a bearer token beyond it.
import { afterAll, describe, expect, it } from "vitest";
import { InvalidOptionError, serveMetrics, type MetricsServer } from "../src/index.js";
import { isLoopback } from "../src/metrics-server.js";
import { freePort, runCli, stopProc, waitFor, WorkerProcs } from "./helpers.js";
import { schemaFixture } from "./schema-fixture.js";

const f = schemaFixture({ label: "metrics_server" });
const procs = new WorkerProcs(() => f.schema);
const servers: MetricsServer[] = [];

afterAll(async () => {
  await procs.killAll();
  await Promise.all(servers.map((s) => s.close()));
});

const TEXT = "# HELP x_total x\n# TYPE x_total counter\nx_total 3\n";

async function serve(options: { token?: string; host?: string } = {}): Promise<MetricsServer> {
  const s = await serveMetrics({ metrics: async () => TEXT, port: 0, ...options });
  servers.push(s);
  return s;
}

describe("serveMetrics", () => {
  it("serves the text on loopback without a token, and nothing but GET /metrics", async () => {
    const s = await serve();
    expect(s.url).toBe(`http://127.0.0.1:${s.port}/metrics`);
    const r = await fetch(s.url);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await r.text()).toBe(TEXT);
    expect((await fetch(s.url.replace("/metrics", "/other"))).status).toBe(404);
    expect((await fetch(s.url, { method: "POST" })).status).toBe(405);
  });

  it("with a token, answers only a scrape that sends it as a bearer token", async () => {
    const s = await serve({ token: "s3cret-token" });
    const get = (authorization?: string) =>
      fetch(s.url, authorization === undefined ? {} : { headers: { authorization } });
    const none = await get();
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(await none.text()).not.toContain("x_total");
    expect((await get("Bearer wrong")).status).toBe(401);
    expect((await get("Bearer s3cret-token-and-more")).status).toBe(401);
    expect((await get("s3cret-token")).status).toBe(401);
    expect((await get("Basic s3cret-token")).status).toBe(401);
    const ok = await get("Bearer s3cret-token");
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe(TEXT);
  });

  it("refuses a non-loopback host without a token before listening, and a short token", async () => {
    await expect(serveMetrics({ metrics: async () => TEXT, port: 0, host: "0.0.0.0" })).rejects.toThrow(
      InvalidOptionError,
    );
    await expect(serveMetrics({ metrics: async () => TEXT, port: 0, host: "::" })).rejects.toThrow(
      /not a loopback address/,
    );
    await expect(serveMetrics({ metrics: async () => TEXT, port: 0, token: "short" })).rejects.toThrow(/token/);
    // With a token, any host.
    const s = await serve({ host: "0.0.0.0", token: "s3cret-token" });
    expect((await fetch(`http://127.0.0.1:${s.port}/metrics`)).status).toBe(401);
  });

  it("knows the loopback addresses", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) expect(isLoopback(h), h).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "example.com", "128.0.0.1"]) expect(isLoopback(h), h).toBe(false);
  });
});

describe("run-worker --metrics-port", () => {
  it("serves the worker's metrics, behind the token from $SKIPLOCK_METRICS_TOKEN", async () => {
    const port = await freePort();
    const p = await procs.start(["--metrics-port", String(port)], { SKIPLOCK_METRICS_TOKEN: "t0ken-for-tests" });
    const task = await f.client.createTask("multiply", [6, 7]);
    expect(await f.client.waitForCompletion(task.id, { timeout: 20 })).toMatchObject({ status: "COMPLETED" });
    const url = `http://127.0.0.1:${port}/metrics`;
    expect((await fetch(url)).status).toBe(401);
    const line = /^skiplock_tasks_processed_total\{queue="default",name="multiply",outcome="completed"\} 1$/m;
    await waitFor("the completion counted", async () => {
      const r = await fetch(url, { headers: { authorization: "Bearer t0ken-for-tests" } });
      return r.status === 200 && line.test(await r.text());
    });
    await stopProc(p);
  });

  it("refuses to start on a non-loopback --metrics-host without a token, with one clear line", async () => {
    const r = await runCli(["run-worker", "--tasks", "x.js", "--metrics-port", "9999", "--metrics-host", "0.0.0.0"], {
      SKIPLOCK_SCHEMA: f.schema,
      SKIPLOCK_METRICS_TOKEN: "",
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^skiplock: error: invalid option --metrics-host: 0\.0\.0\.0 is not a loopback address: .*token.*\n$/,
    );
  });

  it("logs JSON lines by default, readable lines with --log-format pretty, task lines only at debug", async () => {
    for (const args of [["--log-level", "debug"], ["--log-format", "pretty", "--log-level", "debug"], []]) {
      const p = await procs.start(args);
      const task = await f.client.createTask("multiply", [2, 3]);
      expect(await f.client.waitForCompletion(task.id, { timeout: 20 })).toMatchObject({ status: "COMPLETED" });
      await stopProc(p);
      const lines = p.output().trimEnd().split("\n");
      if (args.includes("pretty")) {
        for (const l of lines) expect(l).toMatch(/^\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO |WARN |ERROR) \S/);
        expect(lines.filter((l) => l.includes(` task=${task.id} `))).not.toEqual([]);
      } else {
        const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
        const about = entries.filter((e) => e.task === task.id);
        if (args.includes("debug")) {
          expect(about.length).toBeGreaterThanOrEqual(2);
          for (const e of about) expect(e).toMatchObject({ level: 20, name: "multiply", queue: "default", attempt: 1 });
        } else {
          expect(about).toEqual([]);
        }
      }
    }
  });

  it("refuses an unknown --log-level or --log-format", async () => {
    for (const args of [
      ["--log-level", "loud"],
      ["--log-format", "xml"],
    ]) {
      const r = await runCli(["run-worker", "--tasks", "x.js", ...args]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        new RegExp(`^skiplock: error: invalid option ${args[0]}: Allowed choices are .*, got "${args[1]}"`),
      );
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    }
  });
});

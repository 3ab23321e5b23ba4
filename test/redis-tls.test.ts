import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisConfigError, SkiplockClient, Worker } from "../src/index.js";
import { resolveConnection } from "../src/config.js";
import { createNotifier } from "../src/notify/index.js";
import { DATABASE_URL, freePort, freshSchema, quiet, startWorkerProcess, stopProc, waitFor } from "./helpers.js";
import { makeTestCertificates, redisWithoutTls } from "./private-sentinel.js";
import { missingTools } from "./system-tools.js";

const skip = missingTools("redis-server", "openssl") ?? redisWithoutTls();

describe.skipIf(skip !== null)("Redis over TLS (rediss://)", () => {
  const dir = mkdtempSync(join(tmpdir(), "skiplock-tls-"));
  const file = (name: string) => join(dir, name);
  let server: ChildProcess;
  let url: string;
  let env: Awaited<ReturnType<typeof freshSchema>>;
  const tls = () => ({
    ca: readFileSync(file("ca.crt"), "utf8"),
    cert: readFileSync(file("client.crt"), "utf8"),
    key: readFileSync(file("client.key"), "utf8"),
  });

  beforeAll(async () => {
    makeTestCertificates(dir);
    const port = await freePort();
    url = `rediss://127.0.0.1:${port}`;
    // TLS only, and a client certificate signed by the CA required.
    server = spawn(
      "redis-server",
      [
        "--port",
        "0",
        "--tls-port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--tls-cert-file",
        file("server.crt"),
        "--tls-key-file",
        file("server.key"),
        "--tls-ca-cert-file",
        file("ca.crt"),
        "--tls-auth-clients",
        "yes",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    server.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    await waitFor("redis-server with TLS to start", () => /Ready to accept connections/.test(out), 15_000);
    env = await freshSchema("redis_tls");
  }, 60_000);

  afterAll(async () => {
    server?.kill("SIGKILL");
    await env?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("carries wake-ups and finished ids with the CA and client certificate given as redisTls", async () => {
    const connection = { databaseUrl: DATABASE_URL, redisUrl: url, redisTls: tls(), schema: env.schema, logger: quiet };
    const client = new SkiplockClient(connection);
    // A poll far beyond the test: the task starts only when its wake-up arrives over TLS.
    const worker = new Worker({ ...connection, pollInterval: 600, tasks: { echo: (x: number) => x } });
    try {
      await worker.start();
      const task = await client.createTask("echo", [7]);
      const done = await client.waitForCompletion(task.id, { timeout: 20 });
      expect(done?.result).toBe(7);
    } finally {
      await worker.stop();
      await client.close();
    }
  }, 30_000);

  it("takes the PEM files from --redis-tls-ca, --redis-tls-cert and --redis-tls-key", async () => {
    const p = await startWorkerProcess(env.schema, [
      ...["--redis-url", url, "--redis-tls-ca", file("ca.crt")],
      ...["--redis-tls-cert", file("client.crt"), "--redis-tls-key", file("client.key")],
    ]);
    try {
      const started = p.events.find((e) => e.event === "worker:started");
      expect(started?.data.redis).toBe("connected");
    } finally {
      await stopProc(p);
    }
  }, 60_000);

  it("and from REDIS_TLS_CA, REDIS_TLS_CERT and REDIS_TLS_KEY", () => {
    const c = resolveConnection(
      { databaseUrl: DATABASE_URL, redisUrl: url },
      { REDIS_TLS_CA: file("ca.crt"), REDIS_TLS_CERT: file("client.crt"), REDIS_TLS_KEY: file("client.key") },
    );
    expect(c.redisTls).toEqual(tls());
    // The key stays out of logs and JSON.
    expect(JSON.stringify(c)).not.toContain("PRIVATE KEY");
  });

  it("does not connect to a server whose certificate no trusted CA signed", async () => {
    const notifier = createNotifier({ redisUrl: url, schema: env.schema, logger: quiet });
    try {
      const down = new Promise<void>((resolve) => notifier.onStatus((s) => s === "down" && resolve()));
      await notifier.start();
      await down;
      expect(notifier.connected).toBe(false);
    } finally {
      await notifier.stop();
    }
  }, 30_000);

  it("refuses TLS settings with a URL without TLS, and a TLS file it cannot read, with a RedisConfigError", () => {
    expect(() =>
      resolveConnection({ databaseUrl: DATABASE_URL, redisUrl: "redis://127.0.0.1:6379", redisTls: tls() }, {}),
    ).toThrow(/TLS settings were given for a URL without TLS/);
    let caught: unknown;
    try {
      resolveConnection({ databaseUrl: DATABASE_URL, redisUrl: url }, { REDIS_TLS_CA: file("missing.crt") });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RedisConfigError);
    expect((caught as Error).message).toMatch(/cannot read the Redis TLS file .*missing\.crt \(\$REDIS_TLS_CA\)/);
  });
});

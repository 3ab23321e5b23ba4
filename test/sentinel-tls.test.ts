import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SkiplockClient, Worker } from "../src/index.js";
import { DATABASE_URL, freshSchema, quiet } from "./helpers.js";
import { nextEvent } from "./worker-events.js";
import { clientPublishesTo, PrivateSentinelGroup, redisWithoutTls } from "./private-sentinel.js";
import { missingTools } from "./system-tools.js";

const skip = missingTools("redis-server", "redis-sentinel", "openssl") ?? redisWithoutTls();

describe.skipIf(skip !== null)("rediss+sentinel://: Sentinel and TLS together", () => {
  const group = new PrivateSentinelGroup({ tls: true });
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let client: SkiplockClient;
  let worker: Worker;

  beforeAll(async () => {
    await group.start();
    env = await freshSchema("sentinel_tls");
    const connection = {
      databaseUrl: DATABASE_URL,
      redisUrl: group.url,
      redisTls: { ca: group.ca },
      schema: env.schema,
      logger: quiet,
    };
    client = new SkiplockClient(connection);
    // A poll far beyond the test: a task starts only when its wake-up reaches the worker.
    worker = new Worker({ ...connection, pollInterval: 600, tasks: { echo: (x: number) => x } });
    await worker.start();
  }, 120_000);

  afterAll(async () => {
    await worker?.stop();
    await client?.close();
    await env?.drop();
    await group.stop();
  });

  async function roundTrip(x: number): Promise<void> {
    const task = await client.createTask("echo", [x]);
    expect((await client.waitForCompletion(task.id, { timeout: 20 }))?.result).toBe(x);
  }

  it("asks the sentinels over TLS, and carries wake-ups and finished ids over TLS, before and after a failover", async () => {
    await roundTrip(1);
    const up = nextEvent(worker, "redis:up", undefined, 40_000);
    const { to } = await group.failover();
    await up;
    await clientPublishesTo(client, to);
    await roundTrip(2);
  }, 90_000);
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "redis";
import { SkiplockClient, Worker } from "../src/index.js";
import { DATABASE_URL, quiet } from "./helpers.js";
import { privateRedisFixture, schemaFixture } from "./schema-fixture.js";

// Redis here is a private redis-server on a free port: this file stops and restarts it.
const redis = privateRedisFixture();
const env = schemaFixture({ label: "redis", redisUrl: () => redis.url, pollInterval: 0.2 });
let worker: Worker;

beforeAll(async () => {
  worker = new Worker({
    databaseUrl: DATABASE_URL,
    redisUrl: redis.url,
    schema: env.schema,
    logger: quiet,
    concurrency: 4,
    pollInterval: 0.3,
    tasks: { double: (n: number) => n * 2 },
  });
  await worker.start();
});

afterAll(async () => {
  await worker?.stop();
});

describe("Redis is only a hint", () => {
  it("tasks run and waitForCompletion resolves while Redis is down, and after it returns", async () => {
    const before = await env.client.waitForCompletion((await env.client.createTask("double", [1])).id, { timeout: 10 });
    expect(before?.result).toBe(2);

    await redis.stop();
    const during = await env.client.createTasks(Array.from({ length: 20 }, (_, i) => ({ name: "double", args: [i] })));
    for (const t of during) {
      const done = await env.client.waitForCompletion(t.id, { timeout: 15 });
      expect(done?.status).toBe("COMPLETED");
      expect(done?.result).toBe((t.args[0] as number) * 2);
    }

    await redis.start();
    const after = await env.client.waitForCompletion((await env.client.createTask("double", [21])).id, { timeout: 15 });
    expect(after?.result).toBe(42);
  });

  it("flushing Redis loses nothing", async () => {
    const tasks = await env.client.createTasks(Array.from({ length: 50 }, (_, i) => ({ name: "double", args: [i] })));
    const admin = createClient({ url: redis.url });
    await admin.connect();
    await admin.flushAll();
    await admin.close();
    for (const t of tasks)
      expect((await env.client.waitForCompletion(t.id, { timeout: 15 }))?.status).toBe("COMPLETED");
  });
});

describe("without REDIS_URL", () => {
  it("a worker and a waiter work by polling alone", async () => {
    const pollingClient = new SkiplockClient({
      databaseUrl: DATABASE_URL,
      redisUrl: null,
      schema: env.schema,
      logger: quiet,
      pollInterval: 0.1,
    });
    const pollingWorker = new Worker({
      databaseUrl: DATABASE_URL,
      redisUrl: null,
      schema: env.schema,
      logger: quiet,
      queues: ["polling"],
      pollInterval: 0.1,
      tasks: { triple: (n: number) => n * 3 },
    });
    await pollingWorker.start();
    try {
      const task = await pollingClient.createTask("triple", [5], { queue: "polling" });
      expect((await pollingClient.waitForCompletion(task.id, { timeout: 10 }))?.result).toBe(15);
    } finally {
      await pollingWorker.stop();
      await pollingClient.close();
    }
  });
});

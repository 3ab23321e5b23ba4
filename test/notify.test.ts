import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "redis";
import { RedisNotifier } from "../src/notify/redis.js";
import type { NotifierStatus } from "../src/notify/notifier.js";
import { FlakyProxy, PrivateRedis, quiet as logger, REDIS_URL, waitFor } from "./helpers.js";

const redisUrl = new URL(REDIS_URL);
const proxy = new FlakyProxy(Number(redisUrl.port || 6379), redisUrl.hostname);
let direct: ReturnType<typeof createClient>;

beforeAll(async () => {
  await proxy.start();
  direct = createClient({ url: REDIS_URL });
  await direct.connect();
});

afterAll(async () => {
  await direct.close();
  await proxy.stop();
});

describe("RedisNotifier", () => {
  it("detects a silently dead connection by its pings, reconnects and re-subscribes", async () => {
    const schema = `notify_${process.pid}`;
    const notifier = new RedisNotifier({ url: `redis://127.0.0.1:${proxy.port}`, schema, logger, pingInterval: 150 });
    const statuses: NotifierStatus[] = [];
    notifier.onStatus((s) => statuses.push(s));
    const heard: number[] = [];
    notifier.onWake(["q"], (_queue, count) => heard.push(count));
    try {
      await notifier.ready();
      await waitFor("first wake-up heard", async () => {
        await direct.publish(`skiplock:${schema}:wake:q`, "1");
        return heard.length > 0;
      });

      expect(proxy.silence()).toBeGreaterThanOrEqual(2); // publisher and subscriber
      heard.length = 0;
      // Nothing gets through the dead connections…
      await direct.publish(`skiplock:${schema}:wake:q`, "2");
      // …until the watchdog notices the missing pings and opens new ones, re-subscribing the wake channel.
      await waitFor("Redis connection went silent", () => statuses.includes("silent"), 10_000);
      await waitFor(
        "wake-ups heard again",
        async () => {
          await direct.publish(`skiplock:${schema}:wake:q`, "3");
          return heard.includes(3);
        },
        10_000,
        100,
      );
      expect(notifier.connected).toBe(true);
    } finally {
      await notifier.close();
    }
  });

  it("drops publishes while Redis is unreachable and says so", async () => {
    const notifier = new RedisNotifier({ url: "redis://127.0.0.1:1", schema: "x", logger });
    const statuses: NotifierStatus[] = [];
    notifier.onStatus((s) => statuses.push(s));
    try {
      await notifier.start();
      await waitFor("the outage reported", () => statuses.includes("down"));
      notifier.publishWake("q", 1); // must neither throw nor queue
      expect(notifier.connected).toBe(false);
      expect(statuses).toEqual(["down"]); // once per outage, however many tries fail
    } finally {
      await notifier.close();
    }
  });

  it(
    "keeps the finished ids published while Redis is down and sends them once it is back",
    { timeout: 30_000 },
    async () => {
      // A private redis-server: this test stops and restarts it.
      const redis = new PrivateRedis();
      await redis.start();
      const notifier = new RedisNotifier({ url: redis.url, schema: "kept", logger });
      const heard: string[] = [];
      let reconnected = 0;
      notifier.onFinished((id) => heard.push(id));
      notifier.onReconnect(() => reconnected++);
      try {
        await notifier.ready();
        await waitFor("the doorbell connected", () => notifier.connected);
        await redis.stop();
        await waitFor("the outage noticed", () => !notifier.connected);
        notifier.publishFinished(["11", "12"]);
        notifier.publishWake("q", 1); // a wake-up is not kept: workers claim when Redis returns anyway
        await redis.start();
        await waitFor("the kept ids heard", () => heard.length >= 2, 20_000);
        expect(heard).toEqual(["11", "12"]);
        expect(reconnected).toBe(1);
      } finally {
        await notifier.close();
        await redis.stop();
      }
    },
  );
});

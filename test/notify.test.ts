import { createServer, connect, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "redis";
import { RedisNotifier } from "../src/notify/redis.js";
import type { Logger } from "../src/logger.js";
import { PrivateRedis, REDIS_URL, waitFor } from "./helpers.js";

/**
 * A TCP proxy to Redis that can go silent: `blackhole()` stops forwarding on every open connection without closing
 * it, as a dead peer behind a NAT or a pulled cable looks. Neither side gets an error; only a liveness check can
 * tell. Connections opened afterwards work normally.
 */
class SilentProxy {
  #server: Server | null = null;
  #pairs = new Set<[Socket, Socket]>();
  #sockets = new Set<Socket>();
  port = 0;

  async start(target: URL): Promise<void> {
    this.#server = createServer((client) => {
      const upstream = connect(Number(target.port || 6379), target.hostname);
      const pair: [Socket, Socket] = [client, upstream];
      this.#sockets.add(client).add(upstream);
      this.#pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.#pairs.delete(pair);
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.#server.address() as { port: number }).port;
  }

  blackhole(): number {
    for (const [client, upstream] of this.#pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
      client.removeAllListeners("data");
      upstream.removeAllListeners("data");
    }
    const n = this.#pairs.size;
    this.#pairs.clear(); // kept open, forgotten: no more traffic either way
    return n;
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()) ?? resolve());
  }
}

const logs: string[] = [];
const logger: Logger = {
  debug: () => {},
  info: (m) => void logs.push(m),
  warn: (m) => void logs.push(m),
  error: (m) => void logs.push(m),
};

const proxy = new SilentProxy();
let direct: ReturnType<typeof createClient>;

beforeAll(async () => {
  await proxy.start(new URL(REDIS_URL));
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
    const heard: number[] = [];
    notifier.onWake(["q"], (_queue, count) => heard.push(count));
    try {
      await notifier.ready();
      await waitFor("first wake-up heard", async () => {
        await direct.publish(`skiplock:${schema}:wake:q`, "1");
        return heard.length > 0;
      });

      expect(proxy.blackhole()).toBeGreaterThanOrEqual(2); // publisher and subscriber
      heard.length = 0;
      // Nothing gets through the dead connections…
      await direct.publish(`skiplock:${schema}:wake:q`, "2");
      // …until the watchdog notices the missing pings and opens new ones, re-subscribing the wake channel.
      await waitFor(
        "Redis connection went silent",
        () => logs.includes("Redis connection went silent; reconnecting"),
        10_000,
      );
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
    logs.length = 0;
    const notifier = new RedisNotifier({ url: "redis://127.0.0.1:1", schema: "x", logger });
    try {
      await notifier.start();
      await waitFor("outage logged", () => logs.some((l) => /Redis unreachable/.test(l)));
      notifier.publishWake("q", 1); // must neither throw nor queue
      expect(notifier.connected).toBe(false);
      expect(logs.filter((l) => /Redis unreachable/.test(l))).toHaveLength(1);
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

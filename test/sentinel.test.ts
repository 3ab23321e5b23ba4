import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisConfigError, SkiplockClient, Worker } from "../src/index.js";
import { parseRedisTarget } from "../src/redis-target.js";
import { channels } from "../src/notify/notifier.js";
import { ClusterLock } from "../src/worker/lock.js";
import { createNotifier } from "../src/notify/index.js";
import { DATABASE_URL, freePort, freshSchema, quiet, startWorkerProcess, stopProc, waitFor } from "./helpers.js";
import { nextEvent } from "./worker-events.js";
import { clientPublishesTo, PrivateSentinelGroup, redisCommand } from "./private-sentinel.js";
import { missingTools } from "./system-tools.js";

describe("redis+sentinel:// URLs", () => {
  it("name the sentinels (port 26379 by default), the master, the database and the credentials", () => {
    expect(
      parseRedisTarget("redis+sentinel://u:p%40ss@s1:26380,s2,[::1]:26381/mymaster/2?sentinelPassword=sp"),
    ).toMatchObject({
      kind: "sentinel",
      tls: false,
      masterName: "mymaster",
      sentinels: [
        { host: "s1", port: 26380 },
        { host: "s2", port: 26379 },
        { host: "::1", port: 26381 },
      ],
      db: 2,
      username: "u",
      password: "p@ss",
      sentinelPassword: "sp",
    });
    expect(parseRedisTarget("rediss+sentinel://s1/m")).toMatchObject({ kind: "sentinel", tls: true });
    expect(parseRedisTarget("rediss://h:6380")).toMatchObject({ kind: "server", tls: true });
  });

  it("are refused with a RedisConfigError that names the problem and never the password", () => {
    const cases: [string, RegExp][] = [
      ["redis+sentinel://s1:26379", /names no master/],
      ["redis+sentinel:///mymaster", /names no sentinel/],
      ["redis+sentinel://s1:99999/m", /port 99999 of s1 is out of range/],
      ["redis+sentinel://s1/m/x", /database "x" is not a number/],
      ["redis+sentinel://s1/m/0/extra", /path beyond/],
      ["redis+sentinel://s1/m?db=1", /unknown parameter "db"/],
      ["redis+sentinel://:secret@s1:x/m", /malformed sentinel address/],
      ["http://localhost", /must start with redis:\/\//],
    ];
    for (const [url, message] of cases) {
      let caught: unknown;
      try {
        parseRedisTarget(url);
      } catch (err) {
        caught = err;
      }
      expect(caught, url).toBeInstanceOf(RedisConfigError);
      expect((caught as RedisConfigError).code).toBe("CONFIG");
      expect((caught as Error).message).toMatch(message);
      expect((caught as Error).message).not.toMatch(/secret/);
    }
  });

  it("are read from REDIS_URL like any Redis URL", () => {
    const client = new SkiplockClient({ databaseUrl: DATABASE_URL, redisUrl: "redis+sentinel://s1/m", logger: quiet });
    expect(JSON.stringify(client)).toContain("redis+sentinel://s1/m");
    void client.close();
    expect(() => new SkiplockClient({ databaseUrl: DATABASE_URL, redisUrl: "redis+sentinel://s1" })).toThrow(
      RedisConfigError,
    );
  });
});

describe("a Sentinel group that cannot be reached", () => {
  it("is an outage like any other: reported down, wake-ups fall back to claiming, stop() is prompt", async () => {
    const url = `redis+sentinel://127.0.0.1:${await freePort()},127.0.0.1:${await freePort()}/mymaster`;
    const notifier = createNotifier({ redisUrl: url, schema: "skiplock", logger: quiet });
    const down = new Promise<void>((resolve) => notifier.onStatus((s) => s === "down" && resolve()));
    await notifier.start();
    await down;
    expect(notifier.connected).toBe(false);
    expect(await notifier.takeWakeTokens!("default", 3)).toBe(3);
    await notifier.stop();
  }, 30_000);
});

const missing = missingTools("redis-server", "redis-sentinel");

describe.skipIf(missing !== null)("Redis Sentinel: the doorbell follows a failover", () => {
  const group = new PrivateSentinelGroup();
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let client: SkiplockClient;
  let worker: Worker;

  beforeAll(async () => {
    await group.start();
    env = await freshSchema("sentinel");
    const connection = { databaseUrl: DATABASE_URL, redisUrl: group.url, schema: env.schema, logger: quiet };
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

  /** Enqueues one task and waits for its result: the worker hears the wake-up, the waiter the finished id. */
  async function roundTrip(x: number): Promise<void> {
    const task = await client.createTask("echo", [x]);
    const done = await client.waitForCompletion(task.id, { timeout: 20 });
    expect(done?.status).toBe("COMPLETED");
    expect(done?.result).toBe(x);
  }

  const wakeSubscribers = async (port: number) => {
    const reply = (await redisCommand(port, ["PUBSUB", "NUMSUB", channels(env.schema).wake("default")])) as unknown[];
    return Number(reply[1]);
  };

  it("wakes the worker and resolves waiters through the master the sentinels name", async () => {
    await roundTrip(1);
    expect(await wakeSubscribers(await group.masterPort())).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it("after SENTINEL FAILOVER: reconnects to the promoted replica, wakes and waiters work again", async () => {
    const down = nextEvent(worker, "redis:down", undefined, 30_000);
    const { to } = await group.failover();
    await down;
    await nextEvent(worker, "redis:up", undefined, 30_000);
    // The worker listens on the new master, not on the demoted one (which would still relay its publishes).
    await waitFor("the worker subscribed on the new master", async () => (await wakeSubscribers(to)) >= 1, 15_000);
    await clientPublishesTo(client, to);
    await roundTrip(2);
    await roundTrip(3);
  }, 60_000);

  it("moves when the sentinels name another master while the old one keeps its clients (cut off from them)", async () => {
    const { from, to } = await group.moveBehindTheClientsBacks();
    // Nothing ends the old master's connections here: each finds the move at its next check of the sentinels.
    await waitFor("the worker subscribed on the new master", async () => (await wakeSubscribers(to)) >= 1, 60_000);
    await clientPublishesTo(client, to);
    await roundTrip(5);
    await group.rejoin(from, to);
  }, 150_000);

  it("after the master is killed: the sentinels promote the replica and the doorbell follows", async () => {
    const from = await group.masterPort();
    const to = group.servers.find((s) => s.port !== from)!.port;
    const down = nextEvent(worker, "redis:down", undefined, 30_000);
    await group.server(from).kill();
    await down;
    await waitFor("the sentinels to promote the replica", async () => (await group.masterPort()) === to, 30_000, 100);
    await nextEvent(worker, "redis:up", undefined, 30_000);
    await waitFor("the worker subscribed on the new master", async () => (await wakeSubscribers(to)) >= 1, 15_000);
    await clientPublishesTo(client, to);
    await roundTrip(4);
  }, 60_000);

  it("run-worker takes the Sentinel URL from REDIS_URL", async () => {
    const p = await startWorkerProcess(env.schema, [], { REDIS_URL: group.url });
    try {
      expect(p.events.find((e) => e.event === "worker:started")?.data.redis).toBe("connected");
    } finally {
      await stopProc(p);
    }
  }, 60_000);

  it("takes the cluster lock on the master the sentinels name", async () => {
    const a = new ClusterLock(group.url);
    const b = new ClusterLock(group.url);
    try {
      await a.start();
      await b.start();
      await waitFor("both locks connected", () => a.connected && b.connected, 15_000);
      let inside: { skipped: boolean } | undefined;
      const outer = await a.run("sentinel-test", 5000, async () => {
        inside = await b.run("sentinel-test", 5000, async () => "b ran");
        return "a ran";
      });
      expect(outer).toEqual({ skipped: false, value: "a ran" });
      expect(inside).toEqual({ skipped: true });
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  }, 30_000);
});

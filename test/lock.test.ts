import { describe, expect, it } from "vitest";
import { ClusterLock } from "../src/worker/lock.js";
import { PrivateRedis, REDIS_URL, freePort, waitFor } from "./helpers.js";

describe("ClusterLock (redlock over node-redis)", () => {
  it("lets one holder run at a time and skips the others", async () => {
    const a = new ClusterLock(REDIS_URL);
    const b = new ClusterLock(REDIS_URL);
    const resource = `skiplock:test:lock:${process.pid}:${Date.now()}`;
    try {
      await Promise.all([a.start(), b.start()]);
      // Both connected, so the lock (not its absence) decides.
      await waitFor("lock clients connected", () => a.connected && b.connected);
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let entered!: () => void;
      const inside = new Promise<void>((r) => (entered = r));
      const first = a.run(resource, 10_000, async () => {
        entered();
        await held;
        return "first";
      });
      await inside;
      expect(await b.run(resource, 10_000, async () => "second")).toEqual({ skipped: true });
      release();
      expect(await first).toEqual({ skipped: false, value: "first" });
      // Released: the other process may take it now.
      expect(await b.run(resource, 10_000, async () => "second")).toEqual({ skipped: false, value: "second" });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("runs the work unguarded when Redis cannot be reached: correctness never depends on the lock", async () => {
    const lock = new ClusterLock(`redis://127.0.0.1:${await freePort()}`);
    try {
      expect(lock.connected).toBe(false);
      expect(await lock.run("skiplock:test:lock:down", 1000, async () => "ran")).toEqual({
        skipped: false,
        value: "ran",
      });
    } finally {
      await lock.close();
    }
  });

  it("reconnects by itself after Redis restarts, and is taken again", { timeout: 30_000 }, async () => {
    // A private redis-server: this test stops and restarts it.
    const redis = new PrivateRedis();
    await redis.start();
    const lock = new ClusterLock(redis.url);
    try {
      await lock.start();
      await waitFor("the lock connected", () => lock.connected);
      await redis.stop();
      await waitFor("the outage noticed", () => !lock.connected);
      expect(await lock.run("skiplock:test:lock:restart", 1000, async () => "unguarded")).toEqual({
        skipped: false,
        value: "unguarded",
      });
      await redis.start(); // same port
      await waitFor("the lock reconnected", () => lock.connected, 20_000);
      const held = lock.run("skiplock:test:lock:restart", 10_000, async () => {
        // Held now, in Redis: another taker is turned away.
        const other = new ClusterLock(redis.url);
        try {
          await other.start();
          await waitFor("the other lock connected", () => other.connected);
          return await other.run("skiplock:test:lock:restart", 1000, async () => "second");
        } finally {
          await other.stop();
        }
      });
      expect(await held).toEqual({ skipped: false, value: { skipped: true } });
    } finally {
      await lock.stop();
      await redis.stop();
    }
  });

  it("runs the work when no Redis is configured", async () => {
    const lock = new ClusterLock(undefined);
    expect(await lock.run("x", 1000, async () => 42)).toEqual({ skipped: false, value: 42 });
    await lock.close();
  });
});

import { describe, expect, it } from "vitest";
import { ClusterLock } from "../src/worker/lock.js";
import { REDIS_URL, freePort, waitFor } from "./helpers.js";

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

  it("runs the work when no Redis is configured", async () => {
    const lock = new ClusterLock(undefined);
    expect(await lock.run("x", 1000, async () => 42)).toEqual({ skipped: false, value: 42 });
    await lock.close();
  });
});

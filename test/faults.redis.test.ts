// Fault injection: Redis dies mid-run and comes back. Redis is only a doorbell: tasks must keep running and
// waiters must keep resolving while it is gone, and wake-ups must return with it. Uses a private redis-server.
import { describe, expect, it } from "vitest";
import { clientInternals } from "../src/client.js";
import { faultFixture } from "./fault-fixture.js";
import { FAST_SWEEP, readLedger, taskRows, waitFor } from "./helpers.js";
import { privateRedisFixture } from "./schema-fixture.js";

const redis = privateRedisFixture();
const env = faultFixture({
  label: "faults_redis",
  workerFlags: FAST_SWEEP,
  redisUrl: () => redis.url,
  pollInterval: 0.2,
});

describe("Redis shut down mid-run, then started again", () => {
  it("tasks keep running and waiters resolve while it is down; wake-ups return with it", async () => {
    // `busy` polls often and serves the default queue; `sleepy` polls every 30 s: within this test only a
    // wake-up (or a reconnect) can make it claim, so it shows whether the doorbell works.
    const busy = await env.worker(["--concurrency", "4", "--poll-interval", "0.3"]);
    const sleepy = await env.worker(["--queue", "wake", "--poll-interval", "30"]);

    // With Redis up, a task for `sleepy` starts at once.
    let t0 = Date.now();
    const before = await env.client.createTask("recorded", ["before"], { queue: "wake" });
    expect((await env.client.waitForCompletion(before.id, { timeout: 10 }))?.status).toBe("COMPLETED");
    expect(Date.now() - t0).toBeLessThan(5000);

    // A stream of tasks is running when Redis goes away.
    const stream = await env.client.createTasks(
      Array.from({ length: 40 }, (_, i) => ({ name: "sleep", args: [50 + (i % 5) * 20] })),
    );
    await waitFor("the stream to be under way", async () => (await readLedger(env.pool, env.schema)).size > 5);
    await redis.stop();
    await busy.waitForEvent("redis:down");
    await sleepy.waitForEvent("redis:down");

    const during = await env.client.createTasks(
      Array.from({ length: 30 }, (_, i) => ({ name: "recorded", args: [i] })),
    );
    // Enqueued for `sleepy` while the doorbell is dead: it cannot hear about this one.
    const missed = await env.client.createTask("recorded", ["missed"], { queue: "wake" });
    for (const t of [...stream, ...during]) {
      const done = await env.client.waitForCompletion(t.id, { timeout: 20 });
      expect(done?.status).toBe("COMPLETED");
      expect(done?.result).toBe(t.args[0]);
    }
    expect((await env.client.getTask(missed.id))?.status).toBe("PENDING");
    expect(clientInternals(env.client).notifier.connected).toBe(false);

    await redis.start(); // same port
    await sleepy.waitForEvent("redis:up", undefined, 20_000);
    await busy.waitForEvent("redis:up", undefined, 20_000);
    // A reconnect means wake-ups may have been missed: the worker claims, and finds the task enqueued meanwhile.
    expect((await env.client.waitForCompletion(missed.id, { timeout: 10 }))?.status).toBe("COMPLETED");

    // A new task for `sleepy` starts long before its 30 s poll: only the wake-up can have told it.
    await waitFor("the client's publisher to reconnect", () => clientInternals(env.client).notifier.connected, 20_000);
    t0 = Date.now();
    const after = await env.client.createTask("recorded", ["after"], { queue: "wake" });
    expect((await env.client.waitForCompletion(after.id, { timeout: 10 }))?.status).toBe("COMPLETED");
    expect(Date.now() - t0).toBeLessThan(5000);

    const ledger = await readLedger(env.pool, env.schema);
    for (const t of [before, ...stream, ...during, missed, after]) expect(ledger.get(t.id)).toHaveLength(1);
    for (const t of [before, missed, after]) expect(ledger.get(t.id)![0]!.pid).toBe(sleepy.child.pid);
    const rows = await taskRows(env.pool, env.schema);
    expect([...rows.values()].filter((r) => r.status !== "COMPLETED")).toEqual([]);
    expect([...rows.values()].every((r) => r.attempt === 1 && r.retry_count === 0)).toBe(true);
    // Both workers lived through it.
    expect(busy.child.exitCode).toBeNull();
    expect(sleepy.child.exitCode).toBeNull();
  });
});

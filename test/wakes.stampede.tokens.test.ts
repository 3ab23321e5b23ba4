import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { channels, RedisNotifier } from "../src/notify/index.js";
import { WAKE_TOKEN_TTL_MS } from "../src/notify/wake-tokens.js";
import { freePort, quiet, REDIS_URL, uniqueName } from "./helpers.js";

// The wake-token counter itself (src/notify/wake-tokens.ts); test/wakes.stampede.test.ts shows what it does for
// twenty worker processes.

const schema = uniqueName("tokens");
const notifier = new RedisNotifier({ url: REDIS_URL, schema, logger: quiet });
const admin = createClient({ url: REDIS_URL });
/** Three more listeners on every queue here: four subscribers in all, as four idle workers would be. */
const others = [1, 2, 3].map(() => new RedisNotifier({ url: REDIS_URL, schema, logger: quiet }));
const QUEUES = ["q1", "q2", "q3", "q4", "q5"];

beforeAll(async () => {
  await admin.connect();
  await notifier.start();
  for (const o of others) o.onWake(QUEUES, () => {});
  await Promise.all(others.map((o) => o.ready()));
});

afterAll(async () => {
  await Promise.all([notifier.stop(), ...others.map((o) => o.stop())]);
  await admin.close();
});

/** The next wake-up heard on `queue`, as the listener gets it. */
function nextWake(queue: string): Promise<unknown[]> {
  return new Promise((resolve) => {
    const off = notifier.onWake([queue], (...args) => {
      off();
      resolve(args);
    });
  });
}

describe("wake tokens", () => {
  it("an announcement adds its count before the message is heard; takes never go below zero", async () => {
    const heard = nextWake("q1");
    await notifier.ready();
    notifier.publishWake("q1", 3);
    expect(await heard).toEqual(["q1", 3, undefined, true]);
    expect(await notifier.takeWakeTokens("q1", 2)).toBe(2);
    expect(await notifier.takeWakeTokens("q1", 5)).toBe(1);
    expect(await notifier.takeWakeTokens("q1", 5)).toBe(0);
  });

  it("the counter expires shortly after its queue's last announcement", async () => {
    const heard = nextWake("q2");
    await notifier.ready();
    notifier.publishWake("q2", 1);
    await heard;
    const ttl = await admin.pTTL(channels(schema).wakeTokens("q2"));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(WAKE_TOKEN_TTL_MS);
  });

  it("claims beyond the tokens taken spend the rest, down to zero", async () => {
    const heard = nextWake("q3");
    await notifier.ready();
    notifier.publishWake("q3", 2);
    await heard;
    notifier.spendWakeTokens("q3", 5);
    // The spend is not awaited by its caller; the take after it on the same connection sees it done.
    expect(await notifier.takeWakeTokens("q3", 5)).toBe(0);
  });

  it("a wake-up for a due time leaves its tokens on a counter of that time, kept until it has passed", async () => {
    const heard = nextWake("q4");
    await notifier.ready();
    const at = Date.now() + 60_000;
    notifier.publishWake("q4", 2, at);
    expect(await heard).toEqual(["q4", 2, at, true]);
    expect(await admin.pTTL(channels(schema).wakeTokens("q4", at))).toBeGreaterThan(60_000);
    expect(await notifier.takeWakeTokens("q4", 5, at)).toBe(2);
    expect(await notifier.takeWakeTokens("q4", 5, at)).toBe(0);
  });

  it("a counter that is gone (expired, lost with Redis) gives what was asked: the worker claims", async () => {
    expect(await notifier.takeWakeTokens("never-announced", 3)).toBe(3);
  });

  it("a count that reaches the workers listening adds no tokens: every one of them may claim at once", async () => {
    const heard = nextWake("q5");
    await notifier.ready();
    notifier.publishWake("q5", 4);
    expect(await heard).toEqual(["q5", 4, undefined, false]);
    expect(await admin.exists(channels(schema).wakeTokens("q5"))).toBe(0);
  });

  it("without Redis, a take gives what was asked: every woken worker claims, as before tokens", async () => {
    const away = new RedisNotifier({ url: `redis://127.0.0.1:${await freePort()}`, schema, logger: quiet });
    try {
      await away.start();
      expect(await away.takeWakeTokens("q", 4)).toBe(4);
    } finally {
      await away.stop();
    }
  });
});

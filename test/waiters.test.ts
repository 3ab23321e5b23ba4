import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "redis";
import { SkiplockClient, SkiplockError, TaskNotFoundError, type Task } from "../src/index.js";
import { clientInternals } from "../src/client.js";
import { DATABASE_URL, PrivateRedis, REDIS_URL, freshSchema, quiet, waitFor } from "./helpers.js";

// waitForCompletion at scale: every waiter of a client shares one batched re-read loop.

let env: Awaited<ReturnType<typeof freshSchema>>;
const clients: SkiplockClient[] = [];

beforeAll(async () => {
  env = await freshSchema("waiters");
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await env?.drop();
});

function newClient(options: { redisUrl: string | null; pollInterval: number }): SkiplockClient {
  const c = new SkiplockClient({ databaseUrl: DATABASE_URL, schema: env.schema, logger: quiet, ...options });
  clients.push(c);
  return c;
}

/** Counts every statement a client sends to Postgres, on any of its connections. Attach before its first query. */
function countQueries(client: SkiplockClient): { n: number } {
  const counter = { n: 0 };
  clientInternals(client).store.pool.on("connect", (conn) => {
    const query = conn.query.bind(conn) as (...args: unknown[]) => unknown;
    conn.query = ((...args: unknown[]) => {
      counter.n++;
      return query(...args);
    }) as typeof conn.query;
  });
  return counter;
}

/**
 * A clock made of a polling client: it waits, without Redis, on a task nobody runs and re-reads it every
 * `pollInterval`. `ticks(n)` resolves once it has read n more times: a window of n poll intervals, measured by the
 * same kind of reads a polling waiter makes, not by sleeping.
 */
async function pollingClock(pollInterval: number) {
  const clock = newClient({ redisUrl: null, pollInterval });
  const reads = countQueries(clock);
  const task = await clock.createTask("clock", [], { queue: "nobody" });
  void clock.waitForCompletion(task.id).catch(() => {}); // rejected (CLIENT_CLOSED) when the clock is closed
  return {
    ticks: async (n: number) => {
      const until = reads.n + n;
      await waitFor(`${n} polls of the clock`, () => reads.n >= until, 60_000, 10);
    },
  };
}

/** Marks tasks COMPLETED with result args[0] * 2, as a worker would, but sends no message. */
async function completeInSql(ids: readonly string[]): Promise<void> {
  await env.pool.query(
    `UPDATE "${env.schema}".tasks SET status = 'COMPLETED', result = to_jsonb((args->>0)::int * 2),
            finished_at = now(), updated_at = now(), duration = 0
      WHERE id = ANY($1::bigint[])`,
    [ids],
  );
}

/** A task this client cancels: waiting on it resolves as soon as its row is read. */
async function cancelledTask(client: SkiplockClient): Promise<Task> {
  const t = await client.createTask("cancelled", [], { queue: "nobody" });
  return client.cancelTask(t.id);
}

describe("10,000 waiters in one process", () => {
  it(
    "all resolve, none rejects, and cost Postgres almost nothing while Redis is up",
    { timeout: 120_000 },
    async () => {
      const N = 10_000;
      // With polling per waiter at 0.05 s this would be 200,000 reads a second.
      const client = newClient({ redisUrl: REDIS_URL, pollInterval: 0.05 });
      const queries = countQueries(client);
      const clock = await pollingClock(0.05);

      // The first wait subscribes; wait until the subscription is confirmed, so the first reads are trusted.
      await client.waitForCompletion((await cancelledTask(client)).id);
      await waitFor("the doorbell connected", () => clientInternals(client).notifier.connected);

      const tasks = await client.createTasks(
        Array.from({ length: N }, (_, i) => ({ name: "double", args: [i], queue: "nobody" })),
      );
      const before = queries.n;
      const waits = tasks.map((t) => client.waitForCompletion(t.id));
      // Waiters are read in the order they came: once one registered after them all resolves, all were read once.
      expect((await client.waitForCompletion((await cancelledTask(client)).id))?.status).toBe("CANCELLED");
      const firstReads = queries.n - before;
      expect(firstReads).toBeGreaterThanOrEqual(N / 1000); // the counter does count the reads…
      expect(firstReads).toBeLessThanOrEqual(N / 1000 + 5); // …and they went in batches (plus the cancel's own)

      // A quiet second: 20 poll intervals of a polling client, during which nothing finishes.
      const quietStart = queries.n;
      await clock.ticks(20);
      // At most one safety-net pass (one statement per 1,000 ids); none is due this soon.
      expect(queries.n - quietStart).toBeLessThanOrEqual(N / 1000);

      // Finish them all, and announce them in one message of 200,000 ids: the 10,000 among 190,000 unrelated ones.
      // Offered to every waiter (ids × listeners), such a message blocked the event loop for minutes.
      await completeInSql(tasks.map((t) => t.id));
      const ids = tasks.map((t) => t.id);
      for (let i = 0; i < 190_000; i++) ids.push(String(1_000_000_000 + i));
      ids.sort(() => Math.random() - 0.5);
      const finishedAt = queries.n;
      const publisher = createClient({ url: REDIS_URL });
      await publisher.connect();
      try {
        expect(await publisher.publish(`skiplock:${env.schema}:finished`, ids.join(","))).toBeGreaterThanOrEqual(1);
      } finally {
        await publisher.close();
      }

      const settled = await Promise.allSettled(waits);
      const rejected = settled.filter((s) => s.status === "rejected");
      expect(rejected.length, String((rejected[0] as PromiseRejectedResult | undefined)?.reason)).toBe(0);
      const results = settled.map((s) => (s as PromiseFulfilledResult<Task | null>).value);
      expect(results.every((t, i) => t?.status === "COMPLETED" && t.result === i * 2)).toBe(true);
      // The finished rows were read in batches too, not one statement per waiter.
      expect(queries.n - finishedAt).toBeLessThanOrEqual(2 * (N / 1000) + 5);
    },
  );
});

describe("while Redis is unavailable", () => {
  it("waiters poll together: one statement per poll interval, not one per waiter", { timeout: 60_000 }, async () => {
    const client = newClient({ redisUrl: null, pollInterval: 0.05 });
    const queries = countQueries(client);
    const clock = await pollingClock(0.05);
    const tasks = await client.createTasks(
      Array.from({ length: 200 }, (_, i) => ({ name: "double", args: [i], queue: "nobody" })),
    );
    const waits = tasks.map((t) => client.waitForCompletion(t.id));
    await client.waitForCompletion((await cancelledTask(client)).id);

    const start = queries.n;
    await clock.ticks(20);
    const polls = queries.n - start;
    // About one batched read per interval, as the clock makes; one read per waiter would be 4,000.
    expect(polls).toBeGreaterThanOrEqual(5);
    expect(polls).toBeLessThanOrEqual(45);

    await completeInSql(tasks.map((t) => t.id)); // no message: polling finds them
    const done = await Promise.all(waits);
    expect(done.map((t) => t?.result)).toEqual(tasks.map((_, i) => i * 2));
  });
});

describe("when the subscriber reconnects", () => {
  // Redis here is a private redis-server on a free port: these tests kill its clients and restart it.
  const redis = new PrivateRedis();
  let client: SkiplockClient;

  beforeAll(async () => {
    await redis.start();
    // Neither a poll (60 s) nor a safety-net read (60 s) can come within these tests' timeouts: only the re-read on
    // reconnection can resolve their waiters.
    client = newClient({ redisUrl: redis.url, pollInterval: 60 });
    await client.waitForCompletion((await cancelledTask(client)).id);
    await waitFor("the doorbell connected", () => clientInternals(client).notifier.connected);
  });

  afterAll(async () => {
    await redis.stop();
  });

  /** 50 tasks, each waited on, each read once while the doorbell was up. */
  async function waitedTasks() {
    const tasks = await client.createTasks(
      Array.from({ length: 50 }, (_, i) => ({ name: "double", args: [i], queue: "nobody" })),
    );
    const waits = tasks.map((t) => client.waitForCompletion(t.id));
    await client.waitForCompletion((await cancelledTask(client)).id);
    expect(clientInternals(client).notifier.connected).toBe(true);
    return { tasks, waits };
  }

  it("every waiter re-reads at once after its connection is killed", { timeout: 20_000 }, async () => {
    const { tasks, waits } = await waitedTasks();
    // The tasks finish unannounced, as when their message went out while the subscriber was disconnected.
    await completeInSql(tasks.map((t) => t.id));
    const admin = createClient({ url: redis.url });
    await admin.connect();
    try {
      expect(await admin.sendCommand(["CLIENT", "KILL", "TYPE", "pubsub"])).toBeGreaterThanOrEqual(1);
    } finally {
      await admin.close();
    }
    const done = await Promise.all(waits);
    expect(done.map((t) => t?.result)).toEqual(tasks.map((_, i) => i * 2));
  });

  it("every waiter re-reads at once after Redis restarts", { timeout: 30_000 }, async () => {
    const { tasks, waits } = await waitedTasks();
    await redis.stop();
    await completeInSql(tasks.map((t) => t.id));
    await redis.start();
    const done = await Promise.all(waits);
    expect(done.map((t) => t?.result)).toEqual(tasks.map((_, i) => i * 2));
  });
});

describe("waitForCompletion", () => {
  it(
    "resolves a waiter of the client that cancels the task at once, without waiting for a poll",
    { timeout: 10_000 },
    async () => {
      const client = newClient({ redisUrl: null, pollInterval: 60 });
      const task = await client.createTask("x", [], { queue: "nobody" });
      const waiting = client.waitForCompletion(task.id);
      await client.waitForCompletion((await cancelledTask(client)).id); // read after it: its first read is done
      await client.cancelTask(task.id);
      expect((await waiting)?.status).toBe("CANCELLED");
    },
  );

  it("with timeout 0 reads the row once: the task if final, else null; unknown ids still throw", async () => {
    const client = newClient({ redisUrl: null, pollInterval: 60 });
    const pending = await client.createTask("x", [], { queue: "nobody" });
    expect(await client.waitForCompletion(pending.id, { timeout: 0 })).toBeNull();
    const cancelled = await cancelledTask(client);
    expect((await client.waitForCompletion(cancelled.id, { timeout: 0 }))?.status).toBe("CANCELLED");
    await expect(client.waitForCompletion("987654321", { timeout: 0 })).rejects.toBeInstanceOf(TaskNotFoundError);
  });

  it("rejects pending waits with CLIENT_CLOSED when the client closes", async () => {
    const client = new SkiplockClient({ databaseUrl: DATABASE_URL, schema: env.schema, logger: quiet, redisUrl: null });
    const task = await client.createTask("x", [], { queue: "nobody" });
    const waiting = client.waitForCompletion(task.id);
    await client.close();
    const err = await waiting.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SkiplockError);
    expect((err as SkiplockError).code).toBe("CLIENT_CLOSED");
    await expect(client.waitForCompletion(task.id)).rejects.toMatchObject({ code: "CLIENT_CLOSED" });
  });
});

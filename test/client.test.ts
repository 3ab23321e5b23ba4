import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  InvalidNameError,
  InvalidOptionError,
  InvalidTaskIdError,
  NotJsonError,
  PayloadTooLargeError,
  UnknownOptionError,
  SkiplockClient,
  TaskNotFoundError,
  closeDefaultClient,
  createTask,
  getTask,
} from "../src/index.js";
import { DATABASE_URL, freshSchema, quiet } from "./helpers.js";

let env: Awaited<ReturnType<typeof freshSchema>>;
let client: SkiplockClient;

const count = async () => Number((await env.pool.query(`SELECT count(*) AS n FROM "${env.schema}".tasks`)).rows[0].n);

beforeAll(async () => {
  env = await freshSchema("client");
  // No Redis: everything here must work on Postgres alone.
  client = new SkiplockClient({ databaseUrl: DATABASE_URL, schema: env.schema, redisUrl: null, logger: quiet });
});

afterAll(async () => {
  await client.close();
  await closeDefaultClient();
  await env.drop();
});

describe("createTask", () => {
  it("stores a PENDING task with the documented defaults", async () => {
    const task = await client.createTask("multiply", [2, 3]);
    expect(task).toMatchObject({
      name: "multiply",
      args: [2, 3],
      queue: "default",
      priority: 0,
      status: "PENDING",
      result: null,
      error: null,
      retryCount: 0,
      maxRetries: null,
      timeout: 300,
      startedAt: null,
      finishedAt: null,
      duration: null,
    });
    expect(task.id).toMatch(/^\d+$/);
    expect(task.createdAt).toBeInstanceOf(Date);
    expect(await client.getTask(task.id)).toEqual(task);
  });

  it("takes queue, priority, timeout, maxRetries, runAt and delay", async () => {
    const runAt = new Date(Date.now() + 3_600_000);
    const a = await client.createTask("x", [], { queue: "mail", priority: 7, timeout: 1.5, maxRetries: 3, runAt });
    expect(a).toMatchObject({ queue: "mail", priority: 7, timeout: 1.5, maxRetries: 3 });
    expect(a.runAt.getTime()).toBe(runAt.getTime());
    const b = await client.createTask("x", [], { delay: 60 });
    expect(b.runAt.getTime() - b.createdAt.getTime()).toBeGreaterThanOrEqual(59_000);
  });

  it("refuses arguments JSON cannot carry, before anything is written", async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const before = await count();
    const bad: [unknown[], RegExp][] = [
      [[10n], /args\[0\].*BigInt/],
      [[() => 1], /args\[0\].*function/],
      [[cyclic], /args\[0\]\.self.*cycle/],
      [[1, undefined], /args\[1\].*undefined/],
      [[Number.NaN], /args\[0\].*finite/],
      [[new Map([[1, 2]])], /args\[0\].*Map/],
      [[{ deep: [Symbol("s")] }], /args\[0\]\.deep\[0\].*symbol/],
    ];
    for (const [args, message] of bad) {
      const err = await client.createTask("x", args).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotJsonError);
      expect((err as NotJsonError).code).toBe("NOT_JSON");
      expect((err as Error).message).toMatch(message);
    }
    await expect(client.createTask("x", "notanarray" as never)).rejects.toBeInstanceOf(NotJsonError);
    expect(await count()).toBe(before);
  });

  it("accepts Dates (as their JSON) and drops undefined object properties, like JSON", async () => {
    const when = new Date("2030-01-02T03:04:05.000Z");
    const task = await client.createTask("x", [{ when, skip: undefined, keep: null }]);
    expect(task.args).toEqual([{ when: "2030-01-02T03:04:05.000Z", keep: null }]);
  });

  it("refuses invalid names and options with typed errors", async () => {
    const before = await count();
    await expect(client.createTask("", [])).rejects.toBeInstanceOf(InvalidNameError);
    await expect(client.createTask("bad name", [])).rejects.toBeInstanceOf(InvalidNameError);
    await expect(client.createTask("x", [], { queue: "no spaces" })).rejects.toBeInstanceOf(InvalidNameError);
    await expect(client.createTask("x", [], { queue: "'; DROP TABLE tasks; --" })).rejects.toBeInstanceOf(
      InvalidNameError,
    );
    await expect(client.createTask("x", [], { priority: 1.5 })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(client.createTask("x", [], { timeout: 0 })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(client.createTask("x", [], { maxRetries: -1 })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(client.createTask("x", [], { delay: 1, runAt: new Date() })).rejects.toBeInstanceOf(
      InvalidOptionError,
    );
    await expect(client.createTask("x", [], { runAt: new Date("nope") })).rejects.toBeInstanceOf(InvalidOptionError);
    expect(await count()).toBe(before);
    expect(() => new SkiplockClient({ databaseUrl: DATABASE_URL, schema: 'x"; DROP SCHEMA public; --' })).toThrow(
      InvalidNameError,
    );
    expect(() => new SkiplockClient({ databaseUrl: "mysql://localhost/db" })).toThrow(/postgres:\/\//);
  });
});

describe("createTasks", () => {
  it("enqueues a batch in one statement and returns the tasks in order", async () => {
    const specs = Array.from({ length: 250 }, (_, i) => ({ name: "multiply", args: [i, 2], priority: i % 3 }));
    const tasks = await client.createTasks(specs);
    expect(tasks.map((t) => t.args)).toEqual(specs.map((s) => s.args));
    expect(tasks.map((t) => t.priority)).toEqual(specs.map((s) => s.priority));
    expect(await client.createTasks([])).toEqual([]);
  });

  it("returns each task exactly as getTask reads it back, args as jsonb normalizes them", async () => {
    const args = [
      { zeta: 1, alpha: { b: [1, { y: 2, x: 1 }], a: null }, "10": "n", "2": "m", é: "ünïcødé ✓ 🚀", b: true },
      2 ** 60,
      1e21,
      1e-7,
      -0,
      0.1 + 0.2,
      Number.MAX_VALUE,
      'line\nbreak "quoted" \\ back',
      [],
      {},
    ];
    const runAt = new Date(Date.now() + 3_600_000);
    const specs = [
      { name: "exact", args },
      { name: "exact", args: [{ b: 1, a: 2 }], queue: "mail", priority: -3, timeout: 0.25, maxRetries: 0 },
      { name: "exact", args: [], runAt, maxRetries: 4 },
      { name: "exact", delay: 90.1234567 },
      { name: "exact", args: [1], runAt: new Date(Date.now() - 60_000) },
      { name: "exact", args: [2], runAt: new Date("0044-03-15T12:00:00.123Z") },
      { name: "exact", args: [3], runAt: new Date(Date.UTC(-43, 2, 15, 12, 0, 0, 456)) },
      { name: "exact", args: [4], runAt: new Date(Date.now() + 9 * 365 * 86_400_000 + 789) },
    ];
    const tasks = await client.createTasks(specs);
    const single = await client.createTask("exact", args, { delay: 0.5, maxRetries: 2 });
    for (const task of [...tasks, single]) {
      const read = await client.getTask(task.id);
      expect(task).toEqual(read);
      // Same key order too, as a serializer would see it.
      expect(JSON.stringify(task)).toBe(JSON.stringify(read));
    }
    expect(tasks.map((t) => t.name)).toEqual(specs.map((s) => s.name));
    expect(tasks[0]!.args).toEqual(JSON.parse(JSON.stringify(args)));
    expect(Object.keys(tasks[1]!.args[0] as object)).toEqual(["a", "b"]);
    expect(tasks[1]).toMatchObject({ queue: "mail", priority: -3, timeout: 0.25, maxRetries: 0, attempt: 0 });
    expect(tasks[2]!.runAt.getTime()).toBe(runAt.getTime());
    expect(tasks[2]!.maxRetries).toBe(4);
    for (const i of [4, 5, 6, 7]) expect(tasks[i]!.runAt.getTime()).toBe(specs[i]!.runAt!.getTime());
    expect(tasks[3]!.runAt.getTime() - tasks[3]!.createdAt.getTime()).toBeGreaterThanOrEqual(90_122);
    expect(tasks[3]!.runAt.getTime() - tasks[3]!.createdAt.getTime()).toBeLessThanOrEqual(90_124);
    expect(tasks[0]!.runAt).toEqual(tasks[0]!.createdAt);
    expect(single.runAt.getTime() - single.createdAt.getTime()).toBeGreaterThanOrEqual(499);
    // Ids rise in input order.
    const ids = tasks.map((t) => BigInt(t.id));
    expect(ids).toEqual([...ids].sort((a, b) => (a < b ? -1 : 1)));
  });

  it("writes nothing when any spec is invalid", async () => {
    const before = await count();
    const err = await client
      .createTasks([
        { name: "ok", args: [1] },
        { name: "ok", args: [1n] },
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotJsonError);
    expect((err as Error).message).toMatch(/specs\[1\]\.args\[0\]/);
    expect(await count()).toBe(before);
  });
});

describe("getTask", () => {
  it("returns null for an id that does not exist and refuses malformed ids", async () => {
    expect(await client.getTask("999999999")).toBeNull();
    await expect(client.getTask("1; DROP TABLE x")).rejects.toBeInstanceOf(InvalidTaskIdError);
    await expect(client.getTask("-1")).rejects.toBeInstanceOf(InvalidTaskIdError);
  });
});

describe("waitForCompletion", () => {
  it("resolves null once its timeout passes", async () => {
    const task = await client.createTask("nobody-runs-this", [], { queue: "idle" });
    const started = Date.now();
    expect(await client.waitForCompletion(task.id, { timeout: 0.3, pollInterval: 0.05 })).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it("throws TaskNotFoundError for an unknown id", async () => {
    await expect(client.waitForCompletion("999999999", { timeout: 1 })).rejects.toBeInstanceOf(TaskNotFoundError);
  });

  it("resolves with a cancelled task", async () => {
    const task = await client.createTask("x", [], { queue: "idle" });
    const waiting = client.waitForCompletion(task.id, { timeout: 5, pollInterval: 0.05 });
    const cancelled = await client.cancelTask(task.id);
    expect(cancelled.status).toBe("CANCELLED");
    expect((await waiting)?.status).toBe("CANCELLED");
    // Cancelling again changes nothing.
    expect((await client.cancelTask(task.id)).status).toBe("CANCELLED");
  });
});

describe("cancelTask", () => {
  it("cancels a PENDING task at once, recording when; a running one gets the request, as it stands", async () => {
    const [pending, running] = await client.createTasks([
      { name: "x", queue: "idle" },
      { name: "x", queue: "idle" },
    ]);
    // As a worker's claim leaves it, written by hand.
    await env.pool.query(
      `UPDATE "${env.schema}".tasks SET status = 'PROGRESS', attempt = 1, worker_id = 'w', heartbeat_at = now()
        WHERE id = $1`,
      [running!.id],
    );
    const cancelled = await client.cancelTask(pending!.id);
    expect(cancelled).toMatchObject({ id: pending!.id, status: "CANCELLED", name: "x", queue: "idle" });
    expect(cancelled.finishedAt).toBeInstanceOf(Date);
    expect(cancelled).toEqual(await client.getTask(pending!.id));
    expect(await client.cancelTask(running!.id)).toMatchObject({
      status: "PROGRESS",
      finishedAt: null,
      cancelRequested: true,
    });
    // A finished one is returned unchanged.
    expect(await client.cancelTask(pending!.id)).toEqual(cancelled);
    await expect(client.cancelTask("999999999")).rejects.toBeInstanceOf(TaskNotFoundError);
  });
});

describe("module-level functions", () => {
  it("use a default client configured from the environment", async () => {
    vi.stubEnv("DATABASE_URL", DATABASE_URL);
    vi.stubEnv("SKIPLOCK_SCHEMA", env.schema);
    vi.stubEnv("REDIS_URL", undefined);
    const task = await createTask("from-env", [1]);
    expect((await getTask(task.id))?.name).toBe("from-env");
    const row = await env.pool.query(`SELECT name FROM "${env.schema}".tasks WHERE id = $1`, [task.id]);
    expect(row.rows[0].name).toBe("from-env");
  });
});

describe("SkiplockClient's surface", () => {
  it("keeps its store, notifier and connection URLs to itself, and prints them redacted", () => {
    const c = new SkiplockClient({
      databaseUrl: "postgres://app:s3cret@127.0.0.1:1/app",
      redisUrl: null,
      schema: "jobs",
    });
    expect(Object.keys(c)).toEqual(["logger"]);
    for (const internal of ["store", "notifier", "config", "databaseUrl"]) expect(internal in c).toBe(false);
    expect(JSON.parse(JSON.stringify(c))).toEqual({
      databaseUrl: "postgres://app:***@127.0.0.1:1/app",
      redisUrl: null,
      schema: "jobs",
    });
  });
});

describe("SkiplockClient options", () => {
  it("refuses args over maxArgsBytes before writing, and unknown option keys", async () => {
    const small = new SkiplockClient({
      databaseUrl: DATABASE_URL,
      redisUrl: null,
      schema: env.schema,
      logger: quiet,
      maxArgsBytes: 100,
    });
    try {
      await expect(small.createTask("multiply", ["x".repeat(200)])).rejects.toBeInstanceOf(PayloadTooLargeError);
      await expect(small.createTask("multiply", [1], { retries: 1 } as never)).rejects.toBeInstanceOf(
        UnknownOptionError,
      );
      await expect(small.createTask("multiply", [1], 5 as never)).rejects.toBeInstanceOf(InvalidOptionError);
    } finally {
      await small.close();
    }
    expect(() => new SkiplockClient({ databaseUrl: DATABASE_URL, pollIntervall: 1 } as never)).toThrow(
      /pollIntervall.*pollInterval/s,
    );
  });
});

import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Queryable } from "../src/db/statements.js";
import { Store } from "../src/db/store.js";
import { DEFAULT_MAX_PAYLOAD_BYTES } from "../src/json.js";
import { NullNotifier } from "../src/notify/index.js";
import type { Completion } from "../src/sql/finish.js";
import { Completer } from "../src/worker/completer.js";
import { DATABASE_URL, insertCrashedTasks, quiet, statusCounts, taskRows } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";

const MODULE = fileURLToPath(new URL("./fixtures/unstorable.js", import.meta.url));
/** Every test leaves the queue empty so the next one starts clean. */
const env = workerFixture({
  label: "outcomes",
  workerDefaults: { retryBackoff: { base: 0.01, max: 0.02 } },
  deleteTasksAfterEach: true,
});
const { startWorker, finished } = env;

/** A row written by hand, as skiplock itself never would: args that are an object, not an array. */
async function insertRawArgs(name: string, argsJson: string): Promise<{ id: string }> {
  const { rows } = await env.pool.query<{ id: string }>(
    `INSERT INTO "${env.schema}".tasks (name, args) VALUES ($1, $2::jsonb) RETURNING id::text AS id`,
    [name, argsJson],
  );
  return rows[0]!;
}

describe("an outcome Postgres cannot store fails its own task only", () => {
  it("inline: NUL, lone surrogate and oversize results fail at once, for good; the rest complete; the worker goes on", async () => {
    await startWorker({
      concurrency: 16,
      maxRetries: 2,
      tasks: {
        returnsNul: () => "a\u0000b",
        returnsLoneSurrogate: () => ["ok", "\uD800"],
        returnsHuge: () => "h".repeat(DEFAULT_MAX_PAYLOAD_BYTES),
        throwsNul: () => {
          throw new Error("bad\u0000error");
        },
        double: (n: number) => n * 2,
      },
    });
    const specs = ["returnsNul", "returnsLoneSurrogate", "returnsHuge", "throwsNul"].flatMap((name, i) => [
      { name },
      { name: "double", args: [i] },
    ]);
    const tasks = await env.client.createTasks(specs);
    const done = await Promise.all(tasks.map((t) => finished(t)));
    const byName = (name: string) => done.filter((t) => t.name === name);

    expect(byName("double").map((t) => [t.status, t.result])).toEqual([0, 1, 2, 3].map((i) => ["COMPLETED", i * 2]));
    const [nul] = byName("returnsNul");
    expect(nul).toMatchObject({ status: "FAILED", retryCount: 0, attempt: 1, result: null });
    expect(nul!.error).toMatch(/^HandlerError: .*result cannot be stored as JSON: it contains a NUL character/);
    const [lone] = byName("returnsLoneSurrogate");
    expect(lone).toMatchObject({ status: "FAILED", retryCount: 0, attempt: 1 });
    expect(lone!.error).toMatch(/^HandlerError: .*result\[1\] cannot be stored as JSON: .*lone UTF-16 surrogate/);
    const [huge] = byName("returnsHuge");
    expect(huge).toMatchObject({ status: "FAILED", retryCount: 0, attempt: 1 });
    expect(huge!.error).toMatch(
      /^PayloadTooLargeError: result is 32\.0 MiB of JSON, more than maxResultBytes allows \(32\.0 MiB\)/,
    );
    // A thrown error is an ordinary failure (retried), its text kept with the NUL escaped.
    const [thrown] = byName("throwsNul");
    expect(thrown).toMatchObject({ status: "FAILED", retryCount: 2, attempt: 3 });
    expect(thrown!.error).toMatch(/^Error: bad\\u0000error\n/);

    const after = await env.client.createTask("double", [21]);
    expect(await finished(after)).toMatchObject({ status: "COMPLETED", result: 42 });
  });

  it("thread isolation: results and errors go through the same checks", async () => {
    await startWorker({ isolation: "thread", tasksModule: MODULE, concurrency: 4, maxRetries: 1 });
    const tasks = await env.client.createTasks([
      { name: "returnsNul" },
      { name: "returnsLoneSurrogate" },
      { name: "throwsNul" },
      { name: "double", args: [5] },
    ]);
    const [nul, lone, thrown, ok] = await Promise.all(tasks.map((t) => finished(t)));
    expect(nul).toMatchObject({ status: "FAILED", retryCount: 0 });
    expect(nul!.error).toMatch(/result cannot be stored as JSON: it contains a NUL character/);
    expect(lone).toMatchObject({ status: "FAILED", retryCount: 0 });
    expect(lone!.error).toMatch(/result\.s cannot be stored as JSON: .*lone UTF-16 surrogate/);
    expect(thrown).toMatchObject({ status: "FAILED", retryCount: 1 });
    expect(thrown!.error).toMatch(/bad\\u0000error/);
    expect(ok).toMatchObject({ status: "COMPLETED", result: 10 });
  });

  it("refuses a row whose args are not an array without spreading them, inline and in a thread", async () => {
    await startWorker({ maxRetries: 3, tasks: { double: (n: number) => n * 2 } });
    const inline = await finished(await insertRawArgs("double", '{"length":100000000}'));
    expect(inline).toMatchObject({ status: "FAILED", retryCount: 0, attempt: 1 });
    expect(inline.error).toBe(
      "NotJsonError: args cannot be stored as JSON: task arguments must be a JSON array (the handler's parameters), got an object",
    );
    await env.stopWorkers();

    await startWorker({ isolation: "thread", tasksModule: MODULE, maxRetries: 3 });
    const threaded = await finished(await insertRawArgs("double", '{"length":100000000}'));
    expect(threaded).toMatchObject({ status: "FAILED", retryCount: 0, attempt: 1 });
    expect(threaded.error).toMatch(/task arguments must be a JSON array/);
    expect(await finished(await env.client.createTask("double", [4]))).toMatchObject({
      status: "COMPLETED",
      result: 8,
    });
  });
});

describe("Completer", () => {
  const WORKER = "outcomes-test-worker";
  let store: Store;
  const completers: Completer[] = [];

  function completer(q: Queryable = store.hotQueries, maxResultBytes?: number): Completer {
    const c = new Completer({
      q,
      tasks: store.tasks,
      workerId: WORKER,
      notifier: new NullNotifier(),
      logger: quiet,
      backoff: { base: 1, max: 1 },
      maxResultBytes,
    });
    completers.push(c);
    return c;
  }

  const completion = (id: string, resultJson: string): Completion => ({ id, attempt: 1, resultJson, duration: 0.01 });

  beforeAll(() => {
    store = new Store({ databaseUrl: DATABASE_URL, schema: env.schema, poolSize: 4 });
  });

  afterEach(async () => {
    await Promise.all(completers.splice(0).map((c) => c.drain(5_000)));
  });

  afterAll(async () => {
    await store.close();
  });

  it("splits a batch Postgres refuses, fails the rows it refuses, writes every other one", async () => {
    const ids = await insertCrashedTasks(env.pool, env.schema, 40, {
      workerId: WORKER,
      heartbeatAge: 0,
      maxRetries: 3,
    });
    const c = completer();
    // Texts that no serializer of skiplock would produce, so that only Postgres can refuse them.
    const refused = new Map([
      [ids[3]!, '"a\\u0000b"'],
      [ids[17]!, '"\\ud800"'],
      [ids[18]!, '{"x": '],
    ]);
    for (const id of ids) c.complete(completion(id, refused.get(id) ?? `{"n":${id}}`));
    expect(await c.drain(10_000)).toBe(true);

    const rows = await taskRows(env.pool, env.schema, ids);
    for (const id of ids) {
      const row = rows.get(id)!;
      if (refused.has(id)) {
        expect(row).toMatchObject({ status: "FAILED", retry_count: 0, result: null });
        expect(row.error).toMatch(
          /^OutcomeNotStorableError: Postgres could not store this task's outcome: Postgres refused its result: .*\((22P05|22P02)\)$/,
        );
      } else {
        expect(row).toMatchObject({ status: "COMPLETED", result: { n: Number(id) } });
      }
    }
  });

  it("fails a result over maxResultBytes for good and keeps the others", async () => {
    const ids = await insertCrashedTasks(env.pool, env.schema, 3, { workerId: WORKER, heartbeatAge: 0, maxRetries: 3 });
    const c = completer(store.hotQueries, 100);
    c.complete(completion(ids[0]!, `"${"x".repeat(98)}"`)); // 100 bytes: allowed
    c.complete(completion(ids[1]!, `"${"é".repeat(40)}"`)); // 42 characters, 82 bytes: allowed
    c.complete(completion(ids[2]!, `"${"é".repeat(50)}"`)); // 102 bytes
    expect(await c.drain(10_000)).toBe(true);
    const rows = await taskRows(env.pool, env.schema, ids);
    expect(rows.get(ids[0]!)).toMatchObject({ status: "COMPLETED" });
    expect(rows.get(ids[1]!)).toMatchObject({ status: "COMPLETED" });
    expect(rows.get(ids[2]!)).toMatchObject({ status: "FAILED", retry_count: 0, result: null });
    expect(rows.get(ids[2]!)!.error).toBe(
      "PayloadTooLargeError: result is 102 bytes of JSON, more than maxResultBytes allows (100 bytes)",
    );
  });

  it("stores error text with NUL escaped and lone surrogates replaced", async () => {
    const [id] = await insertCrashedTasks(env.pool, env.schema, 1, {
      workerId: WORKER,
      heartbeatAge: 0,
      maxRetries: 0,
    });
    const c = completer();
    c.fail({ id: id!, attempt: 1, error: "Error: bad\u0000error \uDC00!", duration: 0.1, final: false });
    expect(await c.drain(10_000)).toBe(true);
    expect((await taskRows(env.pool, env.schema, [id!])).get(id!)).toMatchObject({
      status: "FAILED",
      error: "Error: bad\\u0000error \uFFFD!",
    });
  });

  it("fails no task for an error that is not the rows' own: retries until it clears", async () => {
    const ids = await insertCrashedTasks(env.pool, env.schema, 5, { workerId: WORKER, heartbeatAge: 0 });
    let refusals = 0;
    const broken: Queryable = {
      query: (config) => {
        if (refusals < 12) {
          refusals++;
          return Promise.reject(Object.assign(new Error("permission denied for table tasks"), { code: "42501" }));
        }
        return store.hotQueries.query(config);
      },
    };
    const c = completer(broken);
    for (const id of ids) c.complete(completion(id, "true"));
    expect(await c.drain(20_000)).toBe(true);
    expect(refusals).toBe(12);
    expect(await statusCounts(env.pool, env.schema)).toEqual({ COMPLETED: 5 });
  });
});

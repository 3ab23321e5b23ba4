import { inspect } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeValue, redactSecrets, redactUrl, resolveConnection } from "../src/config.js";
import { classifyDatabaseError, isConnectionError } from "../src/db/errors.js";
import { Store } from "../src/db/store.js";
import { consoleLogger } from "../src/logger.js";
import { RedisConnection } from "../src/notify/connection.js";
import { RedisNotifier } from "../src/notify/redis.js";
import { ClusterLock } from "../src/worker/lock.js";
import {
  ConfigError,
  DatabaseUnavailableError,
  InvalidOptionError,
  migrate,
  SchemaNotReadyError,
  SkiplockClient,
  Worker,
} from "../src/index.js";
import { FakePostgres } from "./fake-postgres.js";
import { DATABASE_URL, freePort, quiet, uniqueName, waitFor } from "./helpers.js";

const SECRETS = /s3cr|hunter2|r3dis|qpw/;

describe("redactUrl", () => {
  it.each([
    ["postgres://app:s3cr/et@db.local:5432/app", "postgres://app:***@db.local:5432/app"],
    ["postgres://app:s3cr@t?#x@db.local/app", "postgres://app:***@db.local/app"],
    [
      "postgres://db.local/app?password=hunter2&sslmode=require",
      "postgres://db.local/app?password=***&sslmode=require",
    ],
    [
      "postgres://app@db.local/app?sslmode=require&sslpassword=hunter2",
      "postgres://app@db.local/app?sslmode=require&sslpassword=***",
    ],
    ["redis://:r3dis@cache:6379", "redis://:***@cache:6379"],
    ["rediss://default:r3dis@cache:6380/0", "rediss://default:***@cache:6380/0"],
    ["app:s3cret@db.local/app", "app:***@db.local/app"],
  ])("hides the secrets of %s", (url, redacted) => {
    expect(redactUrl(url)).toBe(redacted);
  });

  it.each([
    "postgres://app@db.local:5432/app",
    "postgres://db.local:5432/app?sslmode=require",
    "not a url",
    "redis://cache:6379",
  ])("leaves %s, which holds none, as it is", (url) => expect(redactUrl(url)).toBe(url));

  it("keeps a malformed URL's password out of the error that quotes it", () => {
    const err = (() => {
      try {
        resolveConnection({ databaseUrl: "postgres://app:s3cr/et@db.local:5432/app" });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/malformed database URL "postgres:\/\/app:\*\*\*@db\.local:5432\/app"/);
    expect((err as Error).message).not.toMatch(SECRETS);
  });
});

describe("redactSecrets: URLs among other words", () => {
  it("hides each URL's password and secret parameters, and touches nothing else", () => {
    const line =
      'Redis unreachable {"url":"redis://:r3dis@cache:6379","db":"postgres://app:s3cr/et@db/app?sslmode=require&password=hunter2"} ' +
      "retrying rediss://u:p@ss@x:1 (key=value stays)";
    expect(redactSecrets(line)).toBe(
      'Redis unreachable {"url":"redis://:***@cache:6379","db":"postgres://app:***@db/app?sslmode=require&password=***"} ' +
        "retrying rediss://u:***@x:1 (key=value stays)",
    );
  });

  it("the console logger writes no password, wherever it was in the line", () => {
    const written: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => written.push(chunk) > 0) as typeof process.stderr.write;
    try {
      const log = consoleLogger("debug");
      log.warn("cannot reach postgres://app:s3cret@db/app", {
        url: "redis://:r3dis@cache:6379",
        query: "?password=qpw",
      });
    } finally {
      process.stderr.write = write;
    }
    expect(written).toHaveLength(1);
    expect(written[0]).toMatch(
      /cannot reach postgres:\/\/app:\*\*\*@db\/app .*redis:\/\/:\*\*\*@cache:6379.*password=\*\*\*/,
    );
    expect(written[0]).not.toMatch(SECRETS);
  });
});

describe("clients, workers and their configs print no secret", () => {
  const databaseUrl = "postgres://app:s3cret@127.0.0.1:1/app?password=qpw";
  const redisUrl = "redis://:r3dis@127.0.0.1:1";

  const shown = (value: unknown) => [
    inspect(value, { depth: Infinity }),
    inspect(value, { depth: Infinity, showHidden: true }),
    JSON.stringify(value),
  ];

  it("a resolved connection config keeps its URLs usable but shows them redacted", () => {
    const config = resolveConnection({ databaseUrl, redisUrl, schema: "jobs" });
    expect(config.databaseUrl).toBe(databaseUrl);
    expect(config.redisUrl).toBe(redisUrl);
    expect(Object.keys(config)).toEqual(["schema"]);
    for (const text of shown(config)) expect(text).not.toMatch(SECRETS);
    expect(JSON.parse(JSON.stringify(config))).toEqual({
      databaseUrl: "postgres://app:***@127.0.0.1:1/app?password=***",
      redisUrl: "redis://:***@127.0.0.1:1",
      schema: "jobs",
    });
  });

  it("a store shows neither its URL nor its pools' connection strings", async () => {
    const store = new Store({ databaseUrl, schema: "jobs" });
    try {
      expect(store.databaseUrl).toBe(databaseUrl);
      for (const text of shown(store)) expect(text).not.toMatch(SECRETS);
      expect(inspect(store.pool, { depth: 4 })).not.toMatch(SECRETS);
    } finally {
      await store.close();
    }
  });

  it("SkiplockClient", async () => {
    const client = new SkiplockClient({ databaseUrl, redisUrl, logger: quiet });
    try {
      for (const text of shown(client)) expect(text).not.toMatch(SECRETS);
    } finally {
      await client.close();
    }
  });

  it("a Redis connection, the notifier and the cluster lock", async () => {
    const connection = new RedisConnection({ url: redisUrl });
    const notifier = new RedisNotifier({ url: redisUrl, schema: "jobs", logger: quiet });
    const lock = new ClusterLock(redisUrl);
    expect(connection.url).toBe(redisUrl);
    expect(connection.redactedUrl).toBe("redis://:***@127.0.0.1:1");
    for (const value of [connection, notifier, lock]) {
      for (const text of shown(value)) expect(text).not.toMatch(SECRETS);
    }
    await Promise.all([connection.stop(), notifier.stop(), lock.stop()]);
  });

  it("Worker, and the error its start fails with", async () => {
    const worker = new Worker({ databaseUrl, redisUrl, tasks: { noop: () => null }, logger: quiet });
    for (const text of shown(worker)) expect(text).not.toMatch(SECRETS);
    const err = await worker.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatabaseUnavailableError);
    expect((err as Error).message).toMatch(/postgres:\/\/app:\*\*\*@127\.0\.0\.1:1\/app\?password=\*\*\*/);
    expect((err as Error).message).not.toMatch(SECRETS);
  });
});

describe("validation messages show the value as JSON", () => {
  it.each([
    ["5", '"5"'],
    [5, "5"],
    [NaN, "NaN"],
    [-Infinity, "-Infinity"],
    [undefined, "undefined"],
    [10n, "10n"],
    [null, "null"],
    [{ a: 1 }, '{"a":1}'],
    ["x".repeat(100), `"${"x".repeat(56)}...`],
  ])("%s reads %s", (value, text) => {
    expect(describeValue(value)).toBe(text);
  });

  it('priority: "5" is reported as got "5"', async () => {
    const client = new SkiplockClient({ databaseUrl: DATABASE_URL, redisUrl: null, logger: quiet });
    try {
      const err = await client.createTask("x", [], { priority: "5" as never }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidOptionError);
      expect(err).toMatchObject({ option: "priority" });
      expect((err as Error).message).toMatch(/got "5"$/);
    } finally {
      await client.close();
    }
  });
});

describe("driver errors surface as typed errors, with the cause attached", () => {
  it("connection refused: DatabaseUnavailableError from every client call", async () => {
    const port = await freePort();
    const client = new SkiplockClient({
      databaseUrl: `postgres://postgres@127.0.0.1:${port}/test`,
      redisUrl: null,
      logger: quiet,
    });
    try {
      const calls = [
        () => client.createTask("x", []),
        () =>
          client.createTasks([
            { name: "x", args: [] },
            { name: "y", args: [] },
          ]),
        () => client.getTask("1"),
        () => client.cancelTask("1"),
        () => client.purgeTasks({ olderThanDays: 1 }),
      ];
      for (const call of calls) {
        const err = await call().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DatabaseUnavailableError);
        expect((err as Error).message).toMatch(
          /^cannot connect to Postgres at postgres:\/\/postgres@127\.0\.0\.1:\d+\/test: /,
        );
        expect((err as { cause?: { code?: string } }).cause?.code).toBe("ECONNREFUSED");
        // Still a connection error to the code that retries on those (waiters, the worker).
        expect(isConnectionError(err)).toBe(true);
      }
    } finally {
      await client.close();
    }
  });

  it("a role the server does not know (28000): DatabaseUnavailableError, not retried as a lost connection", async () => {
    const url = new URL(DATABASE_URL);
    url.username = "no_such_role_here";
    const client = new SkiplockClient({ databaseUrl: url.toString(), redisUrl: null, logger: quiet });
    try {
      const err = await client.getTask("1").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DatabaseUnavailableError);
      expect((err as { cause?: { code?: string } }).cause?.code).toBe("28000");
      expect(isConnectionError(err)).toBe(false);
    } finally {
      await client.close();
    }
  });

  describe("a schema that was never migrated: SchemaNotReadyError", () => {
    const schema = uniqueName("never_migrated");
    let client: SkiplockClient;
    beforeAll(() => {
      client = new SkiplockClient({ databaseUrl: DATABASE_URL, redisUrl: null, schema, logger: quiet });
    });
    afterAll(() => client.close());

    it.each([
      ["createTask", () => client.createTask("x", [1])],
      [
        "createTasks",
        () =>
          client.createTasks([
            { name: "x", args: [] },
            { name: "y", args: [] },
          ]),
      ],
      ["getTask", () => client.getTask("1")],
      ["cancelTask", () => client.cancelTask("1")],
      ["purgeTasks", () => client.purgeTasks({ olderThanDays: 1 })],
    ])("%s", async (_name, call) => {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SchemaNotReadyError);
      expect((err as Error).message).toBe(`schema "${schema}" has no skiplock tables: run \`skiplock migrate\` first`);
      expect((err as { cause?: { code?: string } }).cause?.code).toBe("42P01");
    });
  });

  it("classifies by code: network, authentication, missing database and schema", () => {
    const url = "postgres://app:s3cret@db/app";
    const pgError = (code: string, message = "x") => Object.assign(new Error(message), { code });
    for (const code of [
      "ENOTFOUND",
      "EAI_AGAIN",
      "ETIMEDOUT",
      "EHOSTUNREACH",
      "28P01",
      "28000",
      "3D000",
      "57P03",
      "08006",
    ]) {
      const err = classifyDatabaseError(pgError(code), url, "jobs");
      expect(err, code).toBeInstanceOf(DatabaseUnavailableError);
      expect((err as Error).message).not.toMatch(SECRETS);
    }
    expect(classifyDatabaseError(pgError("3F000"), url, "jobs")).toBeInstanceOf(SchemaNotReadyError);
    expect(classifyDatabaseError(pgError("42P01", 'relation "jobs.tasks" does not exist'), url, "jobs")).toBeInstanceOf(
      SchemaNotReadyError,
    );
    // A missing table that is not ours, a constraint, a syntax error: left as Postgres said it.
    for (const [code, message] of [
      ["42P01", 'relation "orders" does not exist'],
      ["23505", "duplicate key"],
      ["42601", "syntax"],
    ]) {
      const err = pgError(code!, message);
      expect(classifyDatabaseError(err, url, "jobs")).toBe(err);
    }
  });
});

describe("a login that fails inside the client leaves no socket open", () => {
  // pg raises "client password must be a string" itself when a server asks for SCRAM and the URL has no password;
  // it used to leave its socket open, and the server waits on it for 60 s, keeping the process alive that long.
  const server = new FakePostgres("scram");
  beforeAll(() => server.start());
  afterAll(() => server.stop());

  it("migrate()", async () => {
    const err = await migrate({ databaseUrl: server.url("app"), schema: "jobs" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatabaseUnavailableError);
    expect((err as Error).message).toMatch(/client password must be a string/);
    await waitFor("the client to close its socket", () => server.open.size === 0, 5000);
  });

  it("a client's pool", async () => {
    const client = new SkiplockClient({ databaseUrl: server.url("app"), redisUrl: null, logger: quiet });
    try {
      const err = await client.getTask("1").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DatabaseUnavailableError);
      const err2 = await client.createTask("x", []).catch((e: unknown) => e);
      expect(err2).toBeInstanceOf(DatabaseUnavailableError);
      await waitFor("the pool to close its sockets", () => server.open.size === 0, 5000);
    } finally {
      await client.close();
    }
  });

  it("a wrong password (28P01) is DatabaseUnavailableError with the server's error as cause", async () => {
    const wrong = new FakePostgres("wrong-password");
    await wrong.start();
    const client = new SkiplockClient({ databaseUrl: wrong.url("app:hunter2"), redisUrl: null, logger: quiet });
    try {
      const err = await client.createTask("x", []).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DatabaseUnavailableError);
      expect((err as { cause?: { code?: string } }).cause?.code).toBe("28P01");
      expect((err as Error).message).toMatch(/password authentication failed/);
      expect((err as Error).message).not.toMatch(SECRETS);
    } finally {
      await client.close();
      await wrong.stop();
    }
  });
});

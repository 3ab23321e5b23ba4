// What a test file sets up once for all its tests: where its tasks live (a fresh schema, or a database of its own),
// a client on them, and a private redis-server. Each function registers the file's beforeAll/afterAll hooks and
// returns what the tests use; vitest runs "after" hooks in reverse order, so what a file sets up after calling one of
// these is torn down before it.
import type pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { SkiplockClient } from "../src/index.js";
import { DATABASE_URL, freshDatabase, freshSchema, PrivateRedis, quiet, REDIS_URL, uniqueName } from "./helpers.js";

/** A migrated schema with a ledger, on `databaseUrl`; `drop()` removes it (and ends `pool`). */
export interface TaskPlace {
  databaseUrl: string;
  schema: string;
  pool: pg.Pool;
  drop: () => Promise<void>;
}

export interface SchemaFixtureOptions {
  /** Names the schema or database. */
  label: string;
  /**
   * Where the tasks live: a fresh schema in the shared test database (default), a database of the file's own
   * (for faults that act on a whole database), or what the function opens under the schema name it is given.
   */
  database?: "shared" | "own" | ((schema: string) => Promise<TaskPlace>);
  /** The Redis the client (and a fault test's workers) use, read once the file's earlier beforeAll hooks ran. */
  redisUrl?: () => string;
  /** The client's `pollInterval`; default the client's own. */
  pollInterval?: number;
}

/** A test file's place and client; the fields can be read from the file's first test (or later hook) on. */
export interface SchemaFixture {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly schema: string;
  /** The test's own pool on the database (not a skiplock connection). */
  readonly pool: pg.Pool;
  /** A SkiplockClient on the schema, quiet, made on first use and closed after the file's tests. */
  readonly client: SkiplockClient;
}

async function open(options: SchemaFixtureOptions): Promise<TaskPlace> {
  const where = options.database ?? "shared";
  if (where === "own") return freshDatabase(options.label);
  if (where === "shared") return { databaseUrl: DATABASE_URL, ...(await freshSchema(options.label)) };
  return where(uniqueName(options.label));
}

/** Opens the file's place before its tests, and closes the client and drops the place after them. */
export function schemaFixture(options: SchemaFixtureOptions): SchemaFixture {
  let place: TaskPlace | undefined;
  let client: SkiplockClient | undefined;
  const ready = (): TaskPlace => {
    if (!place) throw new Error(`the ${options.label} fixture is used before its beforeAll ran`);
    return place;
  };
  beforeAll(async () => {
    place = await open(options);
  });
  afterAll(async () => {
    await client?.close();
    await place?.drop();
  });
  const redisUrl = () => options.redisUrl?.() ?? REDIS_URL;
  return {
    get databaseUrl() {
      return ready().databaseUrl;
    },
    get redisUrl() {
      return redisUrl();
    },
    get schema() {
      return ready().schema;
    },
    get pool() {
      return ready().pool;
    },
    get client() {
      client ??= new SkiplockClient({
        databaseUrl: ready().databaseUrl,
        redisUrl: redisUrl(),
        schema: ready().schema,
        logger: quiet,
        ...(options.pollInterval === undefined ? {} : { pollInterval: options.pollInterval }),
      });
      return client;
    },
  };
}

/** A redis-server of the file's own, started before its tests and stopped after them; the tests may stop it. */
export function privateRedisFixture(): PrivateRedis {
  const redis = new PrivateRedis();
  beforeAll(() => redis.start());
  afterAll(() => redis.stop());
  return redis;
}

import { createHash } from "node:crypto";
import { inspect } from "node:util";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { redactUrl, validateSchemaName } from "../config.js";
import { SkiplockError } from "../errors.js";
import { classifyDatabaseError, databaseUnavailable } from "./errors.js";
import { retryMoved } from "./moved-rows.js";
import { classifiedPool, Pool, type Classify } from "./pool.js";
import type { Database } from "./types.js";

/** Anything that runs a query: a pg Pool, a pooled client, or a plain pg Client (the caller's transaction). */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<R>>;
}

/**
 * A hot statement: a fixed text for one schema. With a name it is prepared once per connection and its plan may be
 * cached; without one it is planned at each run for the values it is given.
 */
export interface Statement {
  name?: string;
  text: string;
}

function statement(kind: string, text: string, prepared: boolean): Statement {
  if (!prepared) return { text };
  // Prepared-statement names must be unique per text on a connection; several schemas may share one pool.
  const digest = createHash("sha1").update(text).digest("hex").slice(0, 12);
  return { name: `skiplock_${kind}_${digest}`, text };
}

/**
 * A statement whose text depends only on the tasks table's name: built once per schema. `prepared: false` is for
 * statements that carry a batch of ids: Postgres then plans each run knowing how many there are, where a cached
 * generic plan, made for a batch of unknown size, can join a thousand ids against every running task.
 */
export function perTable(
  kind: string,
  build: (tasks: string) => string,
  options: { prepared?: boolean } = {},
): (tasks: string) => Statement {
  const cache = new Map<string, Statement>();
  return (tasks) => {
    let s = cache.get(tasks);
    if (!s) cache.set(tasks, (s = statement(kind, build(tasks), options.prepared ?? true)));
    return s;
  };
}

/** Runs a hot statement; run again when it met a row that moved partition under it (see moved-rows.js). */
export function run<R extends pg.QueryResultRow>(
  q: Queryable,
  stmt: Statement,
  values: unknown[],
): Promise<pg.QueryResult<R>> {
  const config = stmt.name === undefined ? { text: stmt.text, values } : { name: stmt.name, text: stmt.text, values };
  return retryMoved(() => q.query<R>(config));
}

/** `"schema"` — only ever built from a validated name. */
export function quoteIdent(name: string): string {
  return `"${validateSchemaName(name)}"`;
}

export interface StoreOptions {
  databaseUrl: string;
  schema: string;
  /** Most connections the pool opens; default 10. */
  poolSize?: number;
  /** Name shown in pg_stat_activity. */
  applicationName?: string;
  /** Let the process exit while only idle connections are open (short scripts). */
  allowExitOnIdle?: boolean;
  /**
   * Milliseconds after which a query made through `q` or `claims` that got no answer fails and its connection is
   * dropped (a connection gone silent); their connections' `statement_timeout` is set to 90% of it. Default none.
   */
  queryTimeout?: number;
  /** Open `claims` too: one more connection, for a worker's claims (see claim.ts). */
  claimConnection?: boolean;
}

export { databaseUnavailable, isConnectionError, isTransientError } from "./errors.js";

/**
 * The connection to Postgres: a pg pool, kysely over it, and the schema's quoted table name. Queries through `pool`
 * and `db` fail with typed errors (DatabaseUnavailableError, SchemaNotReadyError; see classifyDatabaseError);
 * `q` and `claims`, the worker's hot path, fail with the driver's errors, which the worker judges itself.
 */
export class Store {
  readonly pool: pg.Pool;
  /** The pool, through `queryTimeout` (see pooledQueries): for the worker's hot statements. */
  readonly q: Queryable;
  /**
   * A worker's claims: one connection of its own (a worker claims one batch at a time) whose commits do not wait
   * for the WAL flush (see claimTasks). Null unless the store was opened with `claimConnection`.
   */
  readonly claims: Queryable | null;
  readonly #claimPool: pg.Pool | null;
  #claimConnections = 0;
  readonly db: Kysely<Database>;
  readonly schema: string;
  /** `"schema".tasks`, for raw SQL. */
  readonly tasks: string;
  /** Not enumerable, and redacted when the store is printed: it may hold a password. */
  declare readonly databaseUrl: string;
  #closed = false;

  constructor(options: StoreOptions) {
    this.schema = validateSchemaName(options.schema);
    this.tasks = `${quoteIdent(this.schema)}.tasks`;
    Object.defineProperty(this, "databaseUrl", { value: options.databaseUrl, enumerable: false });
    const classify: Classify = (err) => classifyDatabaseError(err, options.databaseUrl, this.schema);
    this.pool = openPool(options, options.poolSize ?? 10, classify);
    // A statement that outlives the client's patience is cancelled by the server too, a little before the client
    // gives up on it: otherwise a claim the worker counted as failed could still commit, and its tasks would sit
    // under this worker's id, never started, until the sweeper took them as lost.
    const limit = options.queryTimeout ? `SET statement_timeout = ${Math.ceil(options.queryTimeout * 0.9)};` : "";
    this.q = pooledQueries(this.pool, options.queryTimeout, limit);
    this.#claimPool = options.claimConnection ? openPool(options, 1, classify) : null;
    const claimSetup = `${limit} SET synchronous_commit = off`;
    this.claims =
      this.#claimPool &&
      pooledQueries(this.#claimPool, options.queryTimeout, claimSetup, () => this.#claimConnections++);
    this.db = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: classifiedPool(this.pool, classify) }),
    }).withSchema(this.schema);
  }

  /**
   * How many connections `claims` has opened so far. A new one after the first means the last one died: perhaps
   * with a Postgres crash that undid the latest claims (see claimTasks).
   */
  get claimConnections(): number {
    return this.#claimConnections;
  }

  /** One round trip; turns a connection failure into a single clear error. */
  async ping(): Promise<void> {
    try {
      await this.pool.query("SELECT 1");
    } catch (err) {
      throw err instanceof SkiplockError ? err : databaseUnavailable(this.databaseUrl, err);
    }
  }

  /** What a printed store shows: its pools and their connection strings stay out. */
  toJSON(): { schema: string; databaseUrl: string } {
    return { schema: this.schema, databaseUrl: redactUrl(this.databaseUrl) };
  }

  [inspect.custom](_depth: number, options: object): string {
    return `Store ${inspect(this.toJSON(), options)}`;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([this.pool.end(), this.#claimPool?.end()]);
  }
}

function openPool(options: StoreOptions, max: number, classify: Classify): pg.Pool {
  const pool = new Pool(
    {
      connectionString: options.databaseUrl,
      max,
      application_name: options.applicationName ?? "skiplock",
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 30_000,
      allowExitOnIdle: options.allowExitOnIdle ?? false,
      keepAlive: true,
    },
    classify,
  );
  // The pool keeps its options for the connections it opens; a printed pool should not show the password.
  Object.defineProperty(pool.options, "connectionString", { enumerable: false });
  // An idle client whose backend was terminated emits here; the pool drops it and opens another on demand.
  pool.on("error", () => {});
  // A checked-out client (kysely holds one for the length of a query) emits on its own: without a listener a
  // terminated backend would crash the process. The query in flight still fails, with the error, to its caller.
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

/**
 * Queries on `pool` through pg's callback interface, in a promise of our own, with a timer of our own when
 * `timeoutMs` is given; `setup` (session settings), unless empty, runs once on each connection before its first
 * query, and `onSetup` is called after it.
 *
 * A worker's claim and outcome statements carry every row it runs. Measured in a loop of 32-row reads: through
 * pg's `query_timeout`, or through a client's own promise, 18–28% of what the loop allocated was promoted to the
 * old generation (each query's objects, the rows included, outlived two young-generation collections), against
 * under 1% this way. In a draining worker that was about 300 bytes a task: its old generation filled and was
 * collected over and over, and its RSS rose and fell with it.
 */
function pooledQueries(pool: pg.Pool, timeoutMs?: number, setup?: string, onSetup?: () => void): Queryable {
  const ready = new WeakSet<pg.PoolClient>();
  return {
    query<R extends pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<R>> {
      return new Promise((resolve, reject) => {
        pool.connect((connectErr, client, release) => {
          if (connectErr || !client) return reject(connectErr);
          let timer: NodeJS.Timeout | undefined;
          let settled = false;
          const finish = (err: Error | null, result?: pg.QueryResult<R>) => {
            if (settled) return;
            settled = true;
            if (timer) clearTimeout(timer);
            // A connection that failed a query, or gave no answer, is closed rather than reused.
            release(err ?? undefined);
            if (err) reject(err);
            else resolve(result!);
          };
          if (timeoutMs) {
            timer = setTimeout(() => finish(noAnswer(timeoutMs)), timeoutMs);
          }
          // pg throws, rather than calls back, on a config it cannot use.
          const run = () => {
            try {
              client.query<R>(config, finish);
            } catch (err) {
              finish(err as Error);
            }
          };
          if (!setup || ready.has(client)) return run();
          client.query(setup, (err) => {
            if (err || settled) return finish(err);
            ready.add(client);
            onSetup?.();
            run();
          });
        });
      });
    },
  };
}

/** A query that got no answer in time: treated like a lost connection (see isConnectionError). */
function noAnswer(ms: number): Error {
  return Object.assign(new Error(`Postgres gave no answer within ${ms / 1000} s; dropping the connection`), {
    code: "ETIMEDOUT",
  });
}

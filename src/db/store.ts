import { inspect } from "node:util";
import { Kysely, PostgresDialect } from "kysely";
import type pg from "pg";
import { redactUrl, validateSchemaName } from "../config.js";
import { openEmbeddedPool } from "../embedded/pool.js";
import { acquireEmbedded, type EmbeddedRef } from "../embedded/registry.js";
import { isEmbeddedUrl } from "../embedded/url.js";
import { SkiplockError } from "../errors.js";
import { classifyDatabaseError, databaseUnavailable } from "./errors.js";
import { classifiedPool, openPool, pooledQueries, type Classify, type PoolOptions } from "./pool.js";
import type { Queryable } from "./statements.js";
import type { Database } from "./types.js";

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
   * Milliseconds after which a query made through `hotQueries` or `claimConnection` that got no answer fails and its
   * connection is dropped (a connection gone silent); their connections' `statement_timeout` is set to 90% of it.
   * Default none.
   */
  queryTimeout?: number;
  /**
   * Open `claimConnection` too: one more connection, for a worker's claims (see claim.ts). Without it a worker
   * claims through `hotQueries`, whose commits wait for the WAL flush as every other statement's do, so no crash
   * undoes a claim (as through PgBouncer, see sessionSetup).
   */
  claimConnection?: boolean;
  /**
   * Milliseconds a query waits for a connection of the pool (and a connection takes to open) before failing; default
   * 10 000. A pool of one that every statement shares waits longer: there a wait is a wait behind the others.
   */
  connectionTimeout?: number;
  /**
   * Connect through a pooler that keeps no session (PgBouncer, `pool_mode = transaction`): unnamed statements and
   * no session settings (see sessionSetup). Default false.
   */
  pgbouncer?: boolean;
}

/**
 * What each hot connection runs once before its first query. Through PgBouncer in transaction mode nothing: a session
 * `SET` lands on whichever server connection serves that one statement, where it then applies to other clients'
 * statements, and never follows this client to its next one. Two things are given up there. The server-side
 * `statement_timeout` (`SET LOCAL` would need a transaction, so three round trips, around every hot statement; a
 * setting made inside a statement does not apply to that statement): the client's own timer still drops a silent
 * connection, and a user wanting the server-side bound sets PgBouncer's `query_timeout` or the role's
 * `statement_timeout`. And claims committing without waiting for the WAL flush: after a Postgres crash the worker
 * finds claims that crash undid by seeing its claim connection replaced (see Fetcher), and PgBouncer keeps the
 * client's connection open across a server restart, so through it claims commit as every other statement does.
 */
function sessionSetup(options: StoreOptions): { hot: string; claim: string } {
  if (options.pgbouncer) return { hot: "", claim: "" };
  const limit = options.queryTimeout ? `SET statement_timeout = ${Math.ceil(options.queryTimeout * 0.9)};` : "";
  return { hot: limit, claim: `${limit} SET synchronous_commit = off` };
}

/**
 * The connection to Postgres: a pg pool, kysely over it, and the schema's quoted table name. Queries through `pool`
 * and `db` fail with typed errors (DatabaseUnavailableError, SchemaNotReadyError; see classifyDatabaseError);
 * `hotQueries` and `claimConnection`, the worker's hot path, fail with the driver's errors, which the worker judges
 * itself. Nothing connects before the first query.
 */
export class Store {
  readonly pool: pg.Pool;
  /** The pool, through `queryTimeout` (see pooledQueries): for the worker's hot statements other than claims. */
  readonly hotQueries: Queryable;
  /**
   * A worker's claims: one connection of its own (a worker claims one batch at a time) whose commits do not wait
   * for the WAL flush (see claimTasks). Null unless the store was opened with `claimConnection`.
   */
  readonly claimConnection: Queryable | null;
  readonly #claimPool: pg.Pool | null;
  #claimConnectionsOpened = 0;
  readonly db: Kysely<Database>;
  readonly schema: string;
  /** Through PgBouncer in transaction pooling mode (see StoreOptions.pgbouncer). */
  readonly pgbouncer: boolean;
  /** `"schema".tasks`, for raw SQL. */
  readonly tasks: string;
  /** `"schema".workers`, the worker registry. */
  readonly workers: string;
  /** Not enumerable, and redacted when the store is printed: it may hold a password. */
  declare readonly databaseUrl: string;
  /** The share of the embedded database (a `pglite:` URL), or null on a Postgres server. */
  readonly embedded: EmbeddedRef | null;
  #closed = false;

  constructor(options: StoreOptions) {
    this.schema = validateSchemaName(options.schema);
    this.pgbouncer = options.pgbouncer ?? false;
    this.tasks = `${quoteIdent(this.schema)}.tasks`;
    this.workers = `${quoteIdent(this.schema)}.workers`;
    Object.defineProperty(this, "databaseUrl", { value: options.databaseUrl, enumerable: false });
    const classify: Classify = (err) => classifyDatabaseError(err, options.databaseUrl, this.schema);
    const poolOptions = (max: number): PoolOptions => ({
      databaseUrl: options.databaseUrl,
      max,
      applicationName: options.applicationName ?? "skiplock",
      allowExitOnIdle: options.allowExitOnIdle ?? false,
      pgbouncer: this.pgbouncer,
      ...(options.connectionTimeout !== undefined ? { connectionTimeout: options.connectionTimeout } : {}),
    });
    this.embedded = isEmbeddedUrl(options.databaseUrl) ? acquireEmbedded(options.databaseUrl) : null;
    if (this.embedded) {
      // One session in the process (see embedded/gate.ts): the claims share the pool, and no session setting is
      // made, as it would hold for every connection; a statement there cannot go silent, so no timeout either.
      this.pool = openEmbeddedPool(this.embedded, options.poolSize ?? 10, classify);
      this.hotQueries = pooledQueries(this.pool);
      this.#claimPool = null;
      this.claimConnection = options.claimConnection ? this.hotQueries : null;
      this.db = new Kysely<Database>({
        dialect: new PostgresDialect({ pool: classifiedPool(this.pool, classify) }),
      }).withSchema(this.schema);
      return;
    }
    this.pool = openPool(poolOptions(options.poolSize ?? 10), classify);
    // A statement that outlives the client's patience is cancelled by the server too, a little before the client
    // gives up on it: otherwise a claim the worker counted as failed could still commit, and its tasks would sit
    // under this worker's id, never started, until the sweeper took them as lost.
    const setup = sessionSetup(options);
    this.hotQueries = pooledQueries(this.pool, options.queryTimeout, setup.hot);
    this.#claimPool = options.claimConnection ? openPool(poolOptions(1), classify) : null;
    this.claimConnection =
      this.#claimPool &&
      pooledQueries(this.#claimPool, options.queryTimeout, setup.claim, () => this.#claimConnectionsOpened++);
    this.db = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: classifiedPool(this.pool, classify) }),
    }).withSchema(this.schema);
  }

  /**
   * How many connections `claimConnection` has opened so far. A new one after the first means the last one died:
   * perhaps with a Postgres crash that undid the latest claims (see claimTasks). Stays 0 with `pgbouncer`: claims
   * then commit synchronously, so no crash undoes one (see sessionSetup).
   */
  get claimConnectionsOpened(): number {
    return this.#claimConnectionsOpened;
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
    await this.embedded?.release();
  }
}

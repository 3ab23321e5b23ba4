import type { PostgresPool, PostgresPoolClient } from "kysely";
import pg from "pg";
import { markConnectFailed } from "./errors.js";
import { sessionLost } from "./pgbouncer.js";
import type { Queryable } from "./statements.js";

/**
 * A pg Client that closes its socket when connecting fails. pg leaves the socket open after an error it raises
 * itself during authentication (a SCRAM password that is missing or not a string, a SASL step it cannot answer):
 * the server then waits for the rest of the handshake until its `authentication_timeout` (60 s by default), and
 * the open socket kept `skiplock migrate` and `status` alive that long after they had printed the error. The pool
 * drops such a client without ending it, so the socket is closed here, where the failure is seen.
 */
export class Client extends pg.Client {
  override connect(): Promise<pg.Client>;
  override connect(callback: (err: Error) => void): void;
  override connect(callback?: (err: Error) => void): Promise<pg.Client> | void {
    if (!callback) {
      return super.connect().catch((err: unknown) => {
        throw this.#abandon(err);
      });
    }
    // pg calls back with (error) or with (null, client).
    const done = callback as (err: Error | null, client?: pg.Client) => void;
    super.connect(((err: Error | null) => (err ? done(this.#abandon(err) as Error) : done(null, this))) as (
      err: Error,
    ) => void);
  }

  #abandon(err: unknown): unknown {
    markConnectFailed(err);
    this.connection.stream.destroy();
    return err;
  }
}

/**
 * A Client for a pooler that keeps no session between transactions (PgBouncer, `pool_mode = transaction`): every
 * statement goes unnamed. A named statement is prepared on one server connection, and PgBouncer 1.18 may run the
 * next transaction of this client on another, where the name is unknown ("prepared statement … does not exist") or
 * already taken by another client's copy. Unnamed, each statement is parsed in the same round trip that runs it.
 */
export class SessionlessClient extends Client {
  // pg's overloads, in one signature; a Submittable (a cursor) passes as it is.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- pg's query() is a set of overloads.
  override query(...args: any[]): any {
    const first: unknown = args[0];
    if (first !== null && typeof first === "object" && "name" in first && !("submit" in first)) {
      const { name: _name, ...unnamed } = first as { name?: string };
      args[0] = unnamed;
    }
    return (super.query as (...a: unknown[]) => unknown)(...args);
  }
}

/** Turns a driver error into the error a caller should see (see classifyDatabaseError). */
export type Classify = (err: unknown) => unknown;

/**
 * A pg Pool whose `query` fails with classified errors: a caller of `pool.query` gets DatabaseUnavailableError or
 * SchemaNotReadyError rather than a driver error. Connections it opens are `Client`s. Only `query` is wrapped:
 * `connect` stays as pg has it, for the worker's hot statements (pooledQueries), which judge the driver's errors
 * themselves.
 */
export class Pool extends pg.Pool {
  readonly #classify: Classify;

  constructor(config: pg.PoolConfig, classify: Classify) {
    super({ Client, ...config });
    this.#classify = classify;
  }

  // pg's overloads, in one signature: the callback, when there is one, is the last argument.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- pg's query() is a set of overloads.
  override query(...args: any[]): any {
    const last: unknown = args.at(-1);
    if (typeof last === "function") {
      args[args.length - 1] = (err: unknown, result: unknown) => last(err ? this.#classify(err) : err, result);
      return (super.query as (...a: unknown[]) => unknown)(...args);
    }
    return (super.query as (...a: unknown[]) => Promise<unknown>)(...args).catch((err: unknown) => {
      throw this.#classify(err);
    });
  }
}

/** `pool` as kysely's dialect takes it, failing with classified errors (see Pool) from connect and query alike. */
export function classifiedPool(pool: pg.Pool, classify: Classify): PostgresPool {
  return {
    async connect(): Promise<PostgresPoolClient> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw classify(err);
      }
      return {
        query: ((...args: unknown[]) => {
          const r = (client.query as (...a: unknown[]) => unknown)(...args);
          // A cursor (kysely's streaming) is returned as it is; a promise fails classified.
          return r instanceof Promise
            ? r.catch((err: unknown) => {
                throw classify(err);
              })
            : r;
        }) as PostgresPoolClient["query"],
        release: () => client.release(),
      };
    },
    end: () => pool.end(),
  };
}

export interface PoolOptions {
  databaseUrl: string;
  /** Most connections the pool opens. */
  max: number;
  /** Name shown in pg_stat_activity. */
  applicationName: string;
  /** Let the process exit while only idle connections are open. */
  allowExitOnIdle: boolean;
  /** Through PgBouncer in transaction pooling mode: connections are SessionlessClients. */
  pgbouncer?: boolean;
  /** Milliseconds to wait for a free connection, or for a new one to open; default 10 000. */
  connectionTimeout?: number;
}

/** A pool as skiplock opens them all: keep-alive, bounded waits, and errors of idle connections absorbed. */
export function openPool(options: PoolOptions, classify: Classify): pg.Pool {
  const pool = new Pool(
    {
      connectionString: options.databaseUrl,
      max: options.max,
      application_name: options.applicationName,
      connectionTimeoutMillis: options.connectionTimeout ?? 10_000,
      idleTimeoutMillis: 30_000,
      allowExitOnIdle: options.allowExitOnIdle,
      keepAlive: true,
      ...(options.pgbouncer ? { Client: SessionlessClient } : {}),
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
export function pooledQueries(pool: pg.Pool, timeoutMs?: number, setup?: string, onSetup?: () => void): Queryable {
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
            if (err) reject(sessionLost(err));
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

import type { PostgresPool, PostgresPoolClient } from "kysely";
import pg from "pg";

/** Marks an error raised while a connection was being opened (see failedToConnect). */
const CONNECT_FAILED = Symbol("skiplock.connectFailed");

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
    if (err && typeof err === "object") Object.defineProperty(err, CONNECT_FAILED, { value: true });
    this.connection.stream.destroy();
    return err;
  }
}

/** Whether `err` (or the error it wraps, as the pool's connection timeout does) was raised while connecting. */
export function failedToConnect(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (CONNECT_FAILED in e) return true;
  }
  return false;
}

/** Turns a driver error into the error a caller should see (see classifyDatabaseError). */
export type Classify = (err: unknown) => unknown;

/**
 * A pg Pool whose `query` fails with classified errors: a caller of `pool.query` gets DatabaseUnavailableError or
 * SchemaNotReadyError rather than a driver error. Connections it opens are `Client`s. Only `query` is wrapped:
 * `connect` stays as pg has it, for the worker's hot statements (store.ts, pooledQueries), which judge the
 * driver's errors themselves.
 */
export class Pool extends pg.Pool {
  readonly #classify: Classify;

  constructor(config: pg.PoolConfig, classify: Classify) {
    super({ ...config, Client });
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

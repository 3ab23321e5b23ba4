import pg from "pg";
import { Pool, type Classify } from "../db/pool.js";
import type { EmbeddedDatabase, EmbeddedRef } from "./registry.js";

/**
 * A pg Pool on an embedded database: each of its clients talks to the shared PGlite instance through the gate
 * (see gate.ts), so the pool may hand out several at once; they take turns there, a transaction at a time. The
 * instance is opened by the first `connect` (a pool's `query` connects too). A connect waits without limit: time
 * spent waiting is time another caller's statements run, not a server that does not answer.
 */
export function openEmbeddedPool(ref: EmbeddedRef, max: number, classify: Classify): pg.Pool {
  let db: EmbeddedDatabase | null = null;
  class EmbeddedClient extends pg.Client {
    constructor(config: pg.ClientConfig) {
      super({ ...config, connection: db!.connection() } as pg.ClientConfig);
    }
  }
  class EmbeddedPool extends Pool {
    override connect(): Promise<pg.PoolClient>;
    override connect(
      callback: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void,
    ): void;
    override connect(
      callback?: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void,
    ): Promise<pg.PoolClient> | void {
      if (db) return callback ? super.connect(callback) : super.connect();
      const opened = ref.open().then((d) => {
        db = d;
      });
      if (!callback) return opened.then(() => super.connect());
      opened.then(
        () => super.connect(callback),
        (err: unknown) => callback(classify(err) as Error, undefined, () => {}),
      );
    }
  }
  const pool = new EmbeddedPool(
    { max, Client: EmbeddedClient as unknown as typeof pg.Client, idleTimeoutMillis: 0, allowExitOnIdle: true },
    classify,
  );
  pool.on("error", () => {});
  pool.on("release", (_err, client) => void db?.released((client as unknown as { connection: unknown }).connection));
  return pool;
}

import Redlock, { ResourceLockedError, type Lock } from "redlock";
import { RedisConnection } from "../notify/connection.js";
import type { RedisTlsOptions } from "../notify/redis-tls.js";

/**
 * redlock talks to Redis through an ioredis-shaped `eval`/`evalsha(script, numKeys, args)` interface; this is that
 * interface over the connection's current node-redis client.
 */
function redlockClient(connection: RedisConnection) {
  const split = (numKeys: number, argv: (string | number)[]) => ({
    keys: argv.slice(0, numKeys).map(String),
    arguments: argv.slice(numKeys).map(String),
  });
  const client = () => {
    const c = connection.client;
    if (!c) throw new Error("the lock's Redis connection is not open");
    return c;
  };
  return {
    evalsha: (sha: string, numKeys: number, argv: (string | number)[]) => client().evalSha(sha, split(numKeys, argv)),
    eval: (script: string, numKeys: number, argv: (string | number)[]) => client().eval(script, split(numKeys, argv)),
  };
}

/**
 * A cluster-wide "one at a time" for maintenance work such as the sweep. It is an optimisation only: the work it
 * guards is safe to run concurrently (every statement is compare-and-set under SKIP LOCKED), so when Redis is
 * absent or down the work simply runs unguarded. Connects on `start()` (or the first `run()`); its Redis outages
 * are not logged here, the notifier reports them.
 */
export class ClusterLock {
  readonly #connection: RedisConnection | null;
  readonly #redlock: Redlock | null;

  constructor(redisUrl: string | undefined, tls?: RedisTlsOptions) {
    if (!redisUrl) {
      this.#connection = null;
      this.#redlock = null;
      return;
    }
    const connection = new RedisConnection({ url: redisUrl, tls, onReady: () => connection.resetRetries() });
    this.#connection = connection;
    this.#redlock = new Redlock([redlockClient(connection) as never], { retryCount: 0, driftFactor: 0.01 });
    this.#redlock.on("error", () => {});
  }

  /** Connects to Redis, if one is configured. Resolves at once: until it answers, work runs unguarded. */
  async start(): Promise<void> {
    await this.#connection?.start();
  }

  /** True while the lock can be taken (Redis configured and connected). */
  get connected(): boolean {
    return this.#connection?.isReady ?? false;
  }

  /**
   * Runs `fn` unless another process holds `resource`; returns `skipped: true` in that case. The lock lives at most
   * `ttlMs`, so a holder that dies frees it by itself.
   */
  async run<T>(resource: string, ttlMs: number, fn: () => Promise<T>): Promise<{ skipped: boolean; value?: T }> {
    void this.start();
    if (!this.#redlock || !this.connected) return { skipped: false, value: await fn() };
    let lock: Lock;
    try {
      lock = await this.#redlock.acquire([resource], ttlMs);
    } catch (err) {
      if (await isLockedElsewhere(err)) return { skipped: true };
      return { skipped: false, value: await fn() };
    }
    try {
      return { skipped: false, value: await fn() };
    } finally {
      await lock.release().catch(() => {});
    }
  }

  /** Closes the connection; work run after runs unguarded. */
  async stop(): Promise<void> {
    await this.#connection?.stop();
  }

  /** The same as `stop()`. */
  close(): Promise<void> {
    return this.stop();
  }
}

/** True when the acquire failed because the resource is held, not because Redis could not be asked. */
async function isLockedElsewhere(err: unknown): Promise<boolean> {
  if (err instanceof ResourceLockedError) return true;
  const attempts = (err as { attempts?: readonly Promise<{ votesAgainst: Map<unknown, Error> }>[] }).attempts;
  const last = attempts?.at(-1);
  if (!last) return false;
  const stats = await last.catch(() => null);
  return stats !== null && [...stats.votesAgainst.values()].some((e) => e instanceof ResourceLockedError);
}

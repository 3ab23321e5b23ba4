import { createClient } from "redis";
import { closeClient } from "../notify/redis.js";
import Redlock, { ResourceLockedError, type Lock } from "redlock";

type Client = ReturnType<typeof createClient>;

/**
 * redlock talks to Redis through an ioredis-shaped `eval`/`evalsha(script, numKeys, args)` interface; this is that
 * interface over a node-redis client.
 */
function redlockClient(client: Client) {
  const split = (numKeys: number, argv: (string | number)[]) => ({
    keys: argv.slice(0, numKeys).map(String),
    arguments: argv.slice(numKeys).map(String),
  });
  return {
    evalsha: (sha: string, numKeys: number, argv: (string | number)[]) => client.evalSha(sha, split(numKeys, argv)),
    eval: (script: string, numKeys: number, argv: (string | number)[]) => client.eval(script, split(numKeys, argv)),
  };
}

/**
 * A cluster-wide "one at a time" for maintenance work such as the sweep. It is an optimisation only: the work it
 * guards is safe to run concurrently (every statement is compare-and-set under SKIP LOCKED), so when Redis is
 * absent or down the work simply runs unguarded.
 */
export class ClusterLock {
  readonly #client: Client | null;
  readonly #redlock: Redlock | null;
  #connecting: Promise<void> | null = null;

  constructor(redisUrl: string | undefined) {
    if (!redisUrl) {
      this.#client = null;
      this.#redlock = null;
      return;
    }
    const client = createClient({
      url: redisUrl,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: 5000,
        reconnectStrategy: (n) => Math.min(100 * 2 ** Math.min(n, 5), 3000) + Math.random() * 250,
      },
    });
    client.on("error", () => {}); // the notifier reports Redis outages; here they only mean "run unguarded"
    this.#connecting = client.connect().then(
      () => {},
      () => {},
    );
    this.#client = client;
    this.#redlock = new Redlock([redlockClient(client) as never], { retryCount: 0, driftFactor: 0.01 });
    this.#redlock.on("error", () => {});
  }

  /** True while the lock can be taken (Redis configured and connected). */
  get connected(): boolean {
    return this.#client?.isReady ?? false;
  }

  /**
   * Runs `fn` unless another process holds `resource`; returns `skipped: true` in that case. The lock lives at most
   * `ttlMs`, so a holder that dies frees it by itself.
   */
  async run<T>(resource: string, ttlMs: number, fn: () => Promise<T>): Promise<{ skipped: boolean; value?: T }> {
    if (!this.#redlock || !this.#client?.isReady) return { skipped: false, value: await fn() };
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

  close(): Promise<void> {
    return closeClient(this.#client, this.#connecting);
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

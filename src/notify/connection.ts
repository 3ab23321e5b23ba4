import { inspect } from "node:util";
import { createClient } from "redis";
import { redactUrl } from "../config.js";
import { retryDelay, type RetryDelayPolicy } from "../retry-delay.js";

/** Waits between attempts to reach Redis again: a tenth of a second at first, at most three seconds. */
export const REDIS_RECONNECT: RetryDelayPolicy = { firstMs: 100, maxMs: 3000 };

/** A node-redis client with the options every skiplock connection to Redis uses. */
function newClient(url: string, offlineQueue: boolean) {
  return createClient({
    url,
    // The wire protocol node-redis 5 spoke (6 defaults to RESP3): pub/sub and EVAL replies as tested.
    RESP: 2,
    // Without it, a command sent while the connection is down fails at once (a wake-up is only a hint).
    disableOfflineQueue: !offlineQueue,
    // No command timeout (node-redis 6 defaults to 5 s): a connection gone silent is found by the notifier's pings.
    commandOptions: { timeout: undefined },
    // No retries inside node-redis (see RedisConnection); keep-alive probes as node-redis 5 sent them.
    socket: { connectTimeout: 5000, reconnectStrategy: false, keepAliveInitialDelay: 5000 },
  });
}

export type RedisClient = ReturnType<typeof newClient>;

export interface RedisConnectionOptions {
  url: string;
  /** Queue commands sent before the connection is up (a subscriber's SUBSCRIBEs); by default they fail at once. */
  offlineQueue?: boolean;
  /** Let the process exit while this connection is open (short scripts using the default client). */
  unref?: boolean;
  /** Called with each new client as soon as it is opened, before it is connected: a subscriber subscribes here. */
  onOpen?: (client: RedisClient) => void;
  /** The current client is connected and ready. */
  onReady?: (client: RedisClient) => void;
  /** The current client failed or closed. Another is opened later, unless the connection was stopped. */
  onLost?: (err: Error) => void;
}

/**
 * One connection to Redis, kept open from `start()` to `stop()`: the notifier's publisher and subscriber and the
 * cluster lock are each one. Nothing connects before `start()`.
 *
 * A lost client is replaced here rather than by node-redis: node-redis waits between its reconnection attempts on a
 * timer that keeps the process alive, so a script whose Redis was unreachable never exited. Our timer is unref'd, and
 * each attempt opens a fresh client that does not retry by itself, after a wait that grows with the failures in a
 * row (REDIS_RECONNECT) until the user of the connection calls `resetRetries()`. Every client has an error listener
 * (node-redis emits errors as events: unheard, they would crash the process); errors reach `onLost` only. The URL,
 * which may hold a password, is not enumerable and shows redacted when the connection is printed.
 */
export class RedisConnection {
  declare readonly url: string;
  readonly #options: Omit<RedisConnectionOptions, "url">;
  #client: RedisClient | null = null;
  readonly #connecting = new WeakMap<RedisClient, Promise<void>>();
  /** Clients already given up on (a replacement is scheduled). */
  readonly #abandoned = new WeakSet<RedisClient>();
  #retries = 0;
  #retryTimer: NodeJS.Timeout | null = null;
  #state: "new" | "started" | "stopped" = "new";

  constructor(options: RedisConnectionOptions) {
    const { url, ...rest } = options;
    Object.defineProperty(this, "url", { value: url, enumerable: false });
    this.#options = rest;
  }

  /** The current client: null before `start()`; after a loss, the lost one until its replacement is opened. */
  get client(): RedisClient | null {
    return this.#client;
  }

  /** True while the current client is connected and ready. */
  get isReady(): boolean {
    return this.#state === "started" && (this.#client?.isReady ?? false);
  }

  /** The URL as logs may show it. */
  get redactedUrl(): string {
    return redactUrl(this.url);
  }

  /** Settles once `client`'s connection attempt has (whether it connected or not). */
  connected(client: RedisClient): Promise<void> | undefined {
    return this.#connecting.get(client);
  }

  /** Opens the first client. Resolves at once: Redis being away never holds up a start. */
  async start(): Promise<void> {
    if (this.#state !== "new") return;
    this.#state = "started";
    this.#open();
  }

  /** The connection is up as its user needs it (a subscriber: its channels confirmed): the next wait is the first. */
  resetRetries(): void {
    this.#retries = 0;
  }

  /** Drops the current client and opens another at once (a connection gone silent, whose socket raises nothing). */
  replace(): void {
    if (this.#state !== "started") return;
    const old = this.#client;
    this.#open();
    try {
      old?.destroy();
    } catch {
      // already closed
    }
  }

  /** Closes the client; no other is opened after. */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    const client = this.#client;
    await closeClient(client, client && this.#connecting.get(client));
  }

  #open(): void {
    const client = newClient(this.url, this.#options.offlineQueue ?? false);
    this.#client = client;
    client.on("error", (err: Error) => this.#lost(client, err));
    client.on("ready", () => {
      if (this.#state === "started" && client === this.#client) this.#options.onReady?.(client);
    });
    if (this.#options.unref) client.unref();
    this.#connecting.set(
      client,
      client.connect().then(
        () => {},
        (err: Error) => this.#lost(client, err),
      ),
    );
    this.#options.onOpen?.(client);
  }

  /** `client` failed or closed: tell the user, and once node-redis gave the client up, open another later. */
  #lost(client: RedisClient, err: Error): void {
    if (this.#state !== "started" || client !== this.#client) return;
    this.#options.onLost?.(err);
    if (client.isOpen || this.#abandoned.has(client)) return;
    this.#abandoned.add(client);
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(
      () => {
        this.#retryTimer = null;
        if (this.#state === "started" && client === this.#client) this.#open();
      },
      retryDelay(this.#retries++, REDIS_RECONNECT),
    );
    // Waiting to reconnect must never keep a process alive: a script is done when its own work is.
    this.#retryTimer.unref();
  }

  toJSON(): { url: string } {
    return { url: this.redactedUrl };
  }

  [inspect.custom](_depth: number, options: object): string {
    return `RedisConnection ${inspect(this.toJSON(), options)}`;
  }
}

/**
 * Closes a node-redis client whatever state it is in. One still connecting is given a moment to finish first:
 * destroying it mid-handshake leaves its socket open and the process alive.
 */
async function closeClient(c: RedisClient | null, connecting: Promise<void> | null | undefined): Promise<void> {
  if (!c) return;
  if (!c.isReady && connecting) await Promise.race([connecting, new Promise((r) => setTimeout(r, 1000).unref())]);
  try {
    if (c.isReady) await c.close();
    else if (c.isOpen) c.destroy();
  } catch {
    // already closed
  }
}

import { inspect } from "node:util";
import { createClient } from "redis";
import { redactUrl } from "../config.js";
import { retryDelay, type RetryDelayPolicy } from "../retry-delay.js";
import { parseRedisTarget, type RedisTarget } from "../redis-target.js";
import type { RedisTlsOptions } from "../redis-tls.js";
import { findMaster, isMaster, type RedisAddress } from "./sentinel.js";

/**
 * With a Sentinel URL, how often each connection asks the sentinels whether the master moved without dropping it
 * (one short connection to a sentinel each time).
 */
export const MASTER_CHECK_MS = 5000;

/** Waits between attempts to reach Redis again: a tenth of a second at first, at most three seconds. */
export const REDIS_RECONNECT: RetryDelayPolicy = { firstMs: 100, maxMs: 3000 };

/**
 * A node-redis client with the options every skiplock connection to Redis uses: to the URL's server, or to `master`
 * (the address the sentinels gave) with the URL's credentials and database.
 */
function newClient(
  target: RedisTarget,
  tls: RedisTlsOptions | undefined,
  offlineQueue: boolean,
  master?: RedisAddress,
) {
  const socket = {
    connectTimeout: 5000,
    // No retries inside node-redis (see RedisConnection); keep-alive probes as node-redis 5 sent them.
    reconnectStrategy: false as const,
    keepAliveInitialDelay: 5000,
    ...tls,
  };
  return createClient({
    ...(target.kind === "server"
      ? { url: target.url, socket }
      : {
          ...(target.username !== undefined && { username: target.username }),
          ...(target.password !== undefined && { password: target.password }),
          ...(target.db !== undefined && { database: target.db }),
          socket: target.tls
            ? { ...socket, host: master!.host, port: master!.port, tls: true as const }
            : { ...socket, host: master!.host, port: master!.port },
        }),
    // The wire protocol node-redis 5 spoke (6 defaults to RESP3): pub/sub and EVAL replies as tested.
    RESP: 2,
    // Without it, a command sent while the connection is down fails at once (a wake-up is only a hint).
    disableOfflineQueue: !offlineQueue,
    // No command timeout (node-redis 6 defaults to 5 s): a connection gone silent is found by the notifier's pings.
    commandOptions: { timeout: undefined },
  });
}

export type RedisClient = ReturnType<typeof newClient>;

export interface RedisConnectionOptions {
  /** redis://, rediss://, or a Sentinel group as redis+sentinel:// (see src/redis-target.ts). */
  url: string;
  /** CA, client certificate and key for a URL with TLS. */
  tls?: RedisTlsOptions | undefined;
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
 *
 * With a Sentinel URL every attempt first asks the sentinels for the master's address, connects there and checks
 * with ROLE that it is the master, and only then hands the client to its user: after a failover the old master drops
 * its clients (or dies), and the next attempt finds the new one. See docs/architecture.md, "Redis Sentinel and TLS".
 */
export class RedisConnection {
  declare readonly url: string;
  readonly #target: RedisTarget;
  readonly #tls: RedisTlsOptions | undefined;
  readonly #options: Omit<RedisConnectionOptions, "url" | "tls">;
  /** The current attempt to open a client (finding the master first, with a Sentinel URL), until it settles. */
  #attempt: Promise<void> | null = null;
  /** Counts the attempts to open at the master; only the latest may become the current client. */
  #generation = 0;
  /** Where each client opened at the master the sentinels named is connected. */
  readonly #masterAddress = new WeakMap<RedisClient, RedisAddress>();
  #masterCheck: NodeJS.Timeout | null = null;
  #checking = false;
  #client: RedisClient | null = null;
  readonly #connecting = new WeakMap<RedisClient, Promise<void>>();
  /** Clients already given up on (a replacement is scheduled). */
  readonly #abandoned = new WeakSet<RedisClient>();
  #retries = 0;
  #retryTimer: NodeJS.Timeout | null = null;
  #state: "new" | "started" | "stopped" = "new";

  constructor(options: RedisConnectionOptions) {
    const { url, tls, ...rest } = options;
    Object.defineProperty(this, "url", { value: url, enumerable: false });
    this.#target = parseRedisTarget(url);
    this.#tls = tls;
    this.#options = rest;
  }

  /** The current client: null before `start()`; after a loss, the lost one until its replacement is opened. */
  get client(): RedisClient | null {
    return this.#client;
  }

  /** `host:port` the current client connects to (the master a Sentinel group named); null before `start()`. */
  get address(): string | null {
    const socket = this.#client?.options?.socket as { host?: string; port?: number } | undefined;
    if (socket?.host !== undefined && socket.port !== undefined) return `${socket.host}:${socket.port}`;
    return this.#target.kind === "server" ? this.redactedUrl : null;
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

  /**
   * Settles once the current attempt to open a client has (with a Sentinel URL, finding the master comes first, and
   * `client` stays null or the lost one until then).
   */
  opening(): Promise<void> | null {
    return this.#attempt;
  }

  /** Opens the first client. Resolves at once: Redis being away never holds up a start. */
  async start(): Promise<void> {
    if (this.#state !== "new") return;
    this.#state = "started";
    this.#open();
    if (this.#target.kind === "sentinel") {
      const target = this.#target;
      this.#masterCheck = setInterval(() => void this.#checkMaster(target), MASTER_CHECK_MS);
      this.#masterCheck.unref();
    }
  }

  /**
   * Asks the sentinels whether the master is still where the current client is connected, and moves if not. A
   * failover normally ends the old master's connections; this covers an old master the sentinels could not reach
   * (cut off from them, not from us), which keeps its clients, and its pub/sub, until it is reconfigured.
   */
  async #checkMaster(target: Extract<RedisTarget, { kind: "sentinel" }>): Promise<void> {
    const client = this.#client;
    const at = client && this.#masterAddress.get(client);
    if (this.#checking || this.#state !== "started" || !at || !client.isReady) return;
    this.#checking = true;
    try {
      const master = await findMaster(target, this.#tls);
      if (client === this.#client && (master.host !== at.host || master.port !== at.port)) {
        this.#options.onLost?.(new Error(`the sentinels name another master (${master.host}:${master.port})`));
        this.replace();
      }
    } catch {
      // No sentinel answered: nothing to compare; the connection itself says whether it works.
    } finally {
      this.#checking = false;
    }
  }

  /** The connection is up as its user needs it (a subscriber: its channels confirmed): the next wait is the first. */
  resetRetries(): void {
    this.#retries = 0;
  }

  /** Drops the current client and opens another at once (a connection gone silent, whose socket raises nothing). */
  replace(): void {
    if (this.#state !== "started") return;
    const old = this.#client;
    // Its loss is this replacement, not a reason to open yet another.
    if (old) this.#abandoned.add(old);
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
    if (this.#masterCheck) clearInterval(this.#masterCheck);
    // An attempt at the master under way closes its own client once it sees the stop; wait for that, briefly.
    if (this.#target.kind === "sentinel" && this.#attempt) {
      await Promise.race([this.#attempt, new Promise((r) => setTimeout(r, 1000).unref())]);
    }
    const client = this.#client;
    await closeClient(client, client && this.#connecting.get(client));
  }

  #open(): void {
    if (this.#target.kind === "sentinel") {
      this.#openAtMaster(this.#target);
      return;
    }
    const client = newClient(this.#target, this.#tls, this.#options.offlineQueue ?? false);
    this.#client = client;
    client.on("error", (err: Error) => this.#lost(client, err));
    client.on("ready", () => {
      if (this.#state === "started" && client === this.#client) this.#options.onReady?.(client);
    });
    if (this.#options.unref) client.unref();
    const connecting = client.connect().then(
      () => {},
      (err: Error) => this.#lost(client, err),
    );
    this.#connecting.set(client, connecting);
    this.#attempt = connecting;
    this.#options.onOpen?.(client);
  }

  /**
   * Asks the sentinels where the master is, connects there and checks its role; only a client at the master becomes
   * the current one (its user subscribes on it and is told it is ready). A failure anywhere is a loss like any other.
   */
  #openAtMaster(target: Extract<RedisTarget, { kind: "sentinel" }>): void {
    const generation = ++this.#generation;
    const attempt = (async () => {
      let client: RedisClient | null = null;
      let master: RedisAddress;
      try {
        master = await findMaster(target, this.#tls);
        if (this.#state !== "started") return;
        client = newClient(target, this.#tls, this.#options.offlineQueue ?? false, master);
        const c = client;
        c.on("error", (err: Error) => this.#lost(c, err));
        if (this.#options.unref) c.unref();
        await c.connect();
        if (!(await isMaster(c)))
          throw new Error(`${master.host}:${master.port} is not the master (a failover under way)`);
        // Stopped, or replaced by a newer attempt meanwhile: this client is not wanted.
        if (this.#state !== "started" || generation !== this.#generation) throw new Error("superseded");
      } catch (err) {
        if (client) await closeClient(client, null);
        if (this.#state === "started" && generation === this.#generation) this.#failedToOpen(err as Error);
        return;
      }
      this.#client = client;
      this.#masterAddress.set(client, master);
      this.#connecting.set(client, Promise.resolve());
      this.#options.onOpen?.(client);
      if (client.isReady) this.#options.onReady?.(client);
    })();
    this.#attempt = attempt;
  }

  /** No client could be opened (no sentinel answered, the master refused): tell the user, and try again later. */
  #failedToOpen(err: Error): void {
    this.#options.onLost?.(err);
    this.#retryLater(() => this.#open());
  }

  /** `client` failed or closed: tell the user, and once node-redis gave the client up, open another later. */
  #lost(client: RedisClient, err: Error): void {
    if (this.#state !== "started" || client !== this.#client) return;
    this.#options.onLost?.(err);
    if (client.isOpen || this.#abandoned.has(client)) return;
    this.#abandoned.add(client);
    this.#retryLater(() => {
      if (client === this.#client) this.#open();
    });
  }

  #retryLater(open: () => void): void {
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(
      () => {
        this.#retryTimer = null;
        if (this.#state === "started") open();
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

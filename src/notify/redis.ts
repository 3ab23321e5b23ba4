import { randomUUID } from "node:crypto";
import { createClient } from "redis";
import { redactUrl } from "../config.js";
import type { Logger } from "../logger.js";
import { channels, type Notifier } from "./notifier.js";

type Client = ReturnType<typeof createClient>;

export interface RedisNotifierOptions {
  url: string;
  schema: string;
  logger: Logger;
  /**
   * Milliseconds between liveness pings. A ping is published and must come back through the subscriber; when both
   * connections claim to be up but pings stop returning (a half-open socket raises no error), both are replaced.
   */
  pingInterval?: number;
  /** Let the process exit while these connections are open (for short scripts using the default client). */
  unref?: boolean;
}

/**
 * The Redis doorbell: one connection publishes, one subscribes (opened on first use). Both reconnect by themselves
 * with a capped, jittered backoff; node-redis re-subscribes a reconnected subscriber, and a replaced subscriber is
 * re-subscribed from the listener registry here. While Redis is away publishes are dropped at once (no offline
 * queue), the outage is logged once, and reconnect listeners fire when it returns.
 */
export class RedisNotifier implements Notifier {
  readonly #url: string;
  readonly #log: Logger;
  readonly #ch: ReturnType<typeof channels>;
  readonly #pingInterval: number;
  readonly #unref: boolean;
  readonly #id = randomUUID();
  #pub!: Client;
  #sub: Client | null = null;
  /** channel → listeners; the source of truth for what the subscriber must listen to. */
  readonly #listeners = new Map<string, Set<(message: string) => void>>();
  readonly #reconnectListeners = new Set<() => void>();
  readonly #connecting = new WeakMap<Client, Promise<void>>();
  /** SUBSCRIBE commands not yet known to be done. */
  readonly #subscribed: Promise<void>[] = [];
  #up = false;
  #outageLogged = false;
  #closed = false;
  #watchdog: NodeJS.Timeout | null = null;
  /** When the outstanding liveness ping was published; 0 when none is outstanding. */
  #pingPendingSince = 0;

  constructor(options: RedisNotifierOptions) {
    this.#url = options.url;
    this.#log = options.logger;
    this.#ch = channels(options.schema);
    this.#pingInterval = options.pingInterval ?? 5000;
    this.#unref = options.unref ?? false;
    this.#pub = this.#open("publisher");
  }

  get connected(): boolean {
    return this.#up && !this.#closed;
  }

  #open(role: "publisher" | "subscriber"): Client {
    const client = createClient({
      url: this.#url,
      // A publish while Redis is away fails at once instead of queueing: the message is only a hint.
      disableOfflineQueue: role === "publisher",
      socket: {
        connectTimeout: 5000,
        reconnectStrategy: (retries) => Math.min(100 * 2 ** Math.min(retries, 5), 3000) + Math.floor(Math.random() * 250),
      },
    });
    client.on("error", (err: Error) => this.#down(err));
    client.on("ready", () => this.#ready());
    if (this.#unref) client.unref();
    // Failures surface through the "error" event; the client keeps retrying until closed.
    this.#connecting.set(client, client.connect().then(() => {}, () => {}));
    return client;
  }

  #down(err: Error): void {
    if (this.#closed) return;
    const wasUp = this.#up;
    this.#up = false;
    if (wasUp || !this.#outageLogged) {
      this.#outageLogged = true;
      this.#log.warn("Redis unreachable; falling back to polling until it returns", {
        url: redactUrl(this.#url),
        error: err.message,
      });
    }
  }

  #ready(): void {
    if (this.#closed || !this.#pub.isReady || (this.#sub !== null && !this.#sub.isReady)) return;
    const wasDown = this.#outageLogged;
    this.#up = true;
    if (wasDown) {
      this.#outageLogged = false;
      this.#log.info("Redis connection restored", { url: redactUrl(this.#url) });
      for (const l of this.#reconnectListeners) l();
    }
  }

  #subscriber(): Client {
    if (!this.#sub) {
      this.#sub = this.#open("subscriber");
      this.#startWatchdog();
    }
    return this.#sub;
  }

  /** Replaces both connections when pings stop coming back although both report themselves ready. */
  #startWatchdog(): void {
    const ping = this.#ch.ping(this.#id);
    this.#listen(ping, () => {
      this.#pingPendingSince = 0;
    });
    this.#watchdog = setInterval(() => {
      if (this.#closed || !this.#pub.isReady || !this.#sub?.isReady) {
        this.#pingPendingSince = 0;
        return;
      }
      const now = Date.now();
      if (this.#pingPendingSince === 0) {
        this.#pingPendingSince = now;
        this.#pub.publish(ping, "1").catch(() => {});
      } else if (now - this.#pingPendingSince > 2 * this.#pingInterval) {
        this.#log.warn("Redis connection went silent; reconnecting", { url: redactUrl(this.#url) });
        this.#pingPendingSince = 0;
        this.#replaceConnections();
      }
    }, this.#pingInterval);
    this.#watchdog.unref();
  }

  #replaceConnections(): void {
    const oldPub = this.#pub;
    const oldSub = this.#sub;
    this.#up = false;
    this.#outageLogged = true;
    this.#pub = this.#open("publisher");
    this.#sub = this.#open("subscriber");
    for (const [channel, set] of this.#listeners) this.#subscribeChannel(channel, set);
    oldPub.destroy();
    oldSub?.destroy();
  }

  #subscribeChannel(channel: string, set: Set<(message: string) => void>): void {
    const done = this.#sub!.subscribe(channel, (message) => {
      for (const l of set) l(message);
    }).catch(() => {
      // Queued until connected; a failure means the client was closed or replaced.
    });
    this.#subscribed.push(done);
  }

  /**
   * Registers a listener. The Redis subscription outlives its last listener: unsubscribing and subscribing again
   * for every waiter would open a window in which a message is missed.
   */
  #listen(channel: string, listener: (message: string) => void): () => void {
    let set = this.#listeners.get(channel);
    if (!set) {
      set = new Set();
      this.#listeners.set(channel, set);
      this.#subscriber();
      this.#subscribeChannel(channel, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  async ready(): Promise<void> {
    if (!this.connected) return;
    const pending = this.#subscribed.splice(0);
    if (pending.length > 0) await Promise.race([Promise.all(pending), new Promise((r) => setTimeout(r, 1000))]);
  }

  #publish(channel: string, message: string): void {
    if (this.#closed) return;
    const pub = this.#pub;
    if (pub.isReady) {
      pub.publish(channel, message).catch(() => {});
    } else if (!this.#outageLogged) {
      // Still making the first connection (not an outage): send once it is up rather than drop the message.
      void this.#connecting.get(pub)?.then(() => {
        if (pub.isReady && !this.#closed) pub.publish(channel, message).catch(() => {});
      });
    }
  }

  publishWake(queue: string, count: number, dueAt?: number): void {
    this.#publish(this.#ch.wake(queue), dueAt === undefined ? String(count) : `${count}@${Math.round(dueAt)}`);
  }

  publishFinished(ids: readonly string[]): void {
    if (ids.length > 0) this.#publish(this.#ch.finished, ids.join(","));
  }

  onWake(queues: readonly string[], listener: (queue: string, count: number, dueAt?: number) => void): () => void {
    const offs = queues.map((queue) =>
      this.#listen(this.#ch.wake(queue), (message) => {
        const [count, dueAt] = message.split("@");
        listener(queue, Number(count) || 1, dueAt === undefined ? undefined : Number(dueAt) || undefined);
      }),
    );
    return () => offs.forEach((off) => off());
  }

  onFinished(listener: (id: string) => void): () => void {
    return this.#listen(this.#ch.finished, (message) => {
      for (const id of message.split(",")) listener(id);
    });
  }

  onReconnect(listener: () => void): () => void {
    this.#reconnectListeners.add(listener);
    return () => this.#reconnectListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#watchdog) clearInterval(this.#watchdog);
    await Promise.all([closeClient(this.#pub, this.#connecting.get(this.#pub)), closeClient(this.#sub, this.#sub && this.#connecting.get(this.#sub))]);
  }
}

/**
 * Closes a node-redis client whatever state it is in. One still connecting is given a moment to finish first:
 * destroying it mid-handshake leaves its socket open and the process alive.
 */
export async function closeClient(c: Client | null, connecting: Promise<void> | null | undefined): Promise<void> {
  if (!c) return;
  if (!c.isReady && connecting) await Promise.race([connecting, new Promise((r) => setTimeout(r, 1000).unref())]);
  try {
    if (c.isReady) await c.close();
    else if (c.isOpen) c.destroy();
  } catch {
    // already closed
  }
}

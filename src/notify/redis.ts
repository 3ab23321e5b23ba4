import { randomUUID } from "node:crypto";
import { createClient } from "redis";
import { redactUrl } from "../config.js";
import type { Logger } from "../logger.js";
import { channels, type Notifier } from "./notifier.js";

type Client = ReturnType<typeof createClient>;
type Role = "publisher" | "subscriber";

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

/** Most finished ids kept while the publisher is down; beyond them, waiters rely on their safety-net read. */
const MAX_UNSENT_FINISHED = 100_000;
/** Ids per "finished" message when sending the kept ones. */
const FINISHED_PER_MESSAGE = 10_000;

/** Milliseconds before reconnection attempt `retries` (0-based): capped exponential backoff with jitter. */
function reconnectDelay(retries: number): number {
  return Math.min(100 * 2 ** Math.min(retries, 5), 3000) + Math.floor(Math.random() * 250);
}

/**
 * The Redis doorbell: one connection publishes, one subscribes (opened on first use).
 *
 * A lost connection is replaced here rather than by node-redis: node-redis waits between its reconnection attempts
 * on a timer that keeps the process alive, so a script whose Redis was unreachable never exited. Our timer is
 * unref'd, and each attempt opens a fresh client that does not retry by itself; a new subscriber subscribes every
 * channel of the listener registry again. While Redis is away wake-ups are dropped at once (no offline queue;
 * workers claim when it returns), finished ids are kept (up to a bound) and sent once it is back, the outage is
 * logged once, and reconnect listeners fire when every connection is back and every channel is confirmed subscribed
 * again: messages sent in the gap were missed, and only then can a re-read see all of them.
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
  #pubUp = false;
  /** The current subscriber confirmed every channel it was opened with. */
  #subUp = false;
  /** SUBSCRIBE commands sent on the current subscriber and not confirmed yet. */
  #pendingSubs = new Set<Promise<boolean>>();
  /** channel → listeners; the source of truth for what the subscriber must listen to. */
  readonly #listeners = new Map<string, Set<(message: string) => void>>();
  readonly #reconnectListeners = new Set<() => void>();
  readonly #connecting = new WeakMap<Client, Promise<void>>();
  readonly #retries: Record<Role, number> = { publisher: 0, subscriber: 0 };
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  /** Clients already given up on (a replacement is scheduled). */
  readonly #abandoned = new WeakSet<Client>();
  /** A connection was lost or replaced since everything was last up: messages may have been missed. */
  #interrupted = false;
  #outageLogged = false;
  #closed = false;
  /**
   * Finished ids published while the publisher was down, sent once every connection is back: a waiter elsewhere
   * would otherwise learn of them only from its safety-net read.
   */
  #unsentFinished: string[] = [];
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

  /** Both connections are up and every channel listened to is confirmed subscribed on the current subscriber. */
  get connected(): boolean {
    return !this.#closed && this.#pubUp && (this.#sub === null || (this.#subUp && this.#pendingSubs.size === 0));
  }

  #current(role: Role): Client | null {
    return role === "publisher" ? this.#pub : this.#sub;
  }

  #open(role: Role): Client {
    const client = createClient({
      url: this.#url,
      // A publish while Redis is away fails at once instead of queueing: the message is only a hint.
      disableOfflineQueue: role === "publisher",
      // No retries inside node-redis (see the class comment): a lost client is replaced by #lost.
      socket: { connectTimeout: 5000, reconnectStrategy: false },
    });
    client.on("error", (err: Error) => this.#lost(role, client, err));
    client.on("ready", () => {
      if (this.#closed || client !== this.#current(role)) return;
      if (role === "publisher") {
        this.#retries.publisher = 0;
        this.#pubUp = true;
      }
      // The subscriber counts as up once its subscriptions are confirmed (#openSubscriber).
      this.#maybeUp();
    });
    if (this.#unref) client.unref();
    this.#connecting.set(
      client,
      client.connect().then(
        () => {},
        (err: Error) => this.#lost(role, client, err),
      ),
    );
    return client;
  }

  #openSubscriber(): void {
    const client = this.#open("subscriber");
    this.#sub = client;
    this.#subUp = false;
    this.#pendingSubs = new Set();
    const confirmed = [...this.#listeners].map(([channel, set]) => this.#subscribeChannel(client, channel, set));
    void Promise.all(confirmed).then((ok) => {
      // Confirmed subscriptions may come before "ready": node-redis sends them while it sets up the connection.
      if (this.#closed || client !== this.#sub || !client.isOpen || !ok.every(Boolean)) return;
      this.#retries.subscriber = 0;
      this.#subUp = true;
      this.#maybeUp();
    });
  }

  /** A connection failed or closed: note the outage, and once node-redis gave the client up, open another later. */
  #lost(role: Role, client: Client, err: Error): void {
    if (this.#closed || client !== this.#current(role)) return;
    if (role === "publisher") this.#pubUp = false;
    else this.#subUp = false;
    this.#interrupted = true;
    if (!this.#outageLogged) {
      this.#outageLogged = true;
      this.#log.warn("Redis unreachable; falling back to polling until it returns", {
        url: redactUrl(this.#url),
        error: err.message,
      });
    }
    if (client.isOpen || this.#abandoned.has(client)) return;
    this.#abandoned.add(client);
    const timer = setTimeout(() => {
      this.#retryTimers.delete(timer);
      if (this.#closed || client !== this.#current(role)) return;
      if (role === "publisher") this.#pub = this.#open("publisher");
      else this.#openSubscriber();
    }, reconnectDelay(this.#retries[role]++));
    // Waiting to reconnect must never keep a process alive: a script is done when its own work is.
    timer.unref();
    this.#retryTimers.add(timer);
  }

  #maybeUp(): void {
    if (!this.connected) return;
    this.#sendUnsentFinished();
    if (!this.#interrupted) return;
    this.#interrupted = false;
    if (this.#outageLogged) {
      this.#outageLogged = false;
      this.#log.info("Redis connection restored", { url: redactUrl(this.#url) });
    }
    for (const l of this.#reconnectListeners) l();
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
    this.#pubUp = false;
    this.#interrupted = true;
    this.#outageLogged = true;
    this.#pub = this.#open("publisher");
    this.#openSubscriber();
    for (const c of [oldPub, oldSub]) {
      try {
        c?.destroy();
      } catch {
        // already closed
      }
    }
  }

  /** Subscribes `channel` on `client`; resolves whether Redis confirmed it. */
  #subscribeChannel(client: Client, channel: string, set: Set<(message: string) => void>): Promise<boolean> {
    const pending = this.#pendingSubs;
    const done = client
      .subscribe(channel, (message) => {
        for (const l of set) l(message);
      })
      .then(
        () => true,
        // Queued until connected; a failure means the client was lost, closed or replaced.
        () => false,
      );
    pending.add(done);
    void done.then(() => {
      pending.delete(done);
      this.#maybeUp();
    });
    return done;
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
      if (this.#sub === null) {
        this.#openSubscriber();
        this.#startWatchdog();
      } else if (this.#sub.isOpen) {
        this.#subscribeChannel(this.#sub, channel, set);
      } // else a replacement is on its way, and subscribes every channel of the registry
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Resolves once the subscriptions made so far are confirmed (at most a second), or at once during an outage:
   * then nothing can be confirmed, and `connected` stays false until it ends.
   */
  async ready(): Promise<void> {
    if (this.#closed || this.#interrupted) return;
    const pending = [...this.#pendingSubs];
    if (pending.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(pending), new Promise((r) => (timer = setTimeout(r, 1000)).unref())]);
    clearTimeout(timer);
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
    if (ids.length === 0 || this.#closed) return;
    const pub = this.#pub;
    // Sent now if possible; kept for later if not, or if the connection turns out to have died under it.
    if (pub.isReady) pub.publish(this.#ch.finished, ids.join(",")).catch(() => this.#keepUnsent(ids));
    else this.#keepUnsent(ids);
  }

  #keepUnsent(ids: readonly string[]): void {
    if (this.#closed) return;
    for (const id of ids) {
      if (this.#unsentFinished.length >= MAX_UNSENT_FINISHED) break;
      this.#unsentFinished.push(id);
    }
  }

  #sendUnsentFinished(): void {
    const ids = this.#unsentFinished;
    if (ids.length === 0) return;
    this.#unsentFinished = [];
    for (let i = 0; i < ids.length; i += FINISHED_PER_MESSAGE) {
      const chunk = ids.slice(i, i + FINISHED_PER_MESSAGE);
      this.#pub.publish(this.#ch.finished, chunk.join(",")).catch(() => this.#keepUnsent(chunk));
    }
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
    for (const t of this.#retryTimers) clearTimeout(t);
    this.#retryTimers.clear();
    await Promise.all([
      closeClient(this.#pub, this.#connecting.get(this.#pub)),
      closeClient(this.#sub, this.#sub && this.#connecting.get(this.#sub)),
    ]);
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

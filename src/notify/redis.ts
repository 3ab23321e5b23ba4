import { randomUUID } from "node:crypto";
import type { Logger } from "../logger.js";
import { RedisConnection, type RedisClient } from "./connection.js";
import { FinishedBacklog } from "./finished-backlog.js";
import type { StoredProgress } from "../task.js";
import { channels, type Notifier, type NotifierStatus, type WakeListener } from "./notifier.js";
import type { RedisTlsOptions } from "../redis-tls.js";
import { PingWatchdog } from "./watchdog.js";
import { ANNOUNCE_SCRIPT, DUE_TIME_MARGIN_MS, TAKE_SCRIPT, TOKENS_MARK, WAKE_TOKEN_TTL_MS } from "./wake-tokens.js";

export interface RedisNotifierOptions {
  /** redis://, rediss://, or a Sentinel group as redis+sentinel:// (see src/redis-target.ts). */
  url: string;
  /** CA, client certificate and key for a URL with TLS. */
  tls?: RedisTlsOptions | undefined;
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
 * The Redis doorbell: one connection publishes, one subscribes (opened with the first listener). Nothing connects
 * before `start()`, the first publish or the first listener.
 *
 * Each connection is a RedisConnection, which replaces a lost client on a timer that never keeps the process alive;
 * a new subscriber subscribes every channel of the listener registry again. While Redis is away wake-ups are dropped
 * at once (no offline queue; workers claim when it returns), finished ids are kept (up to a bound) and sent once it is
 * back, the outage is logged once, and reconnect listeners fire when every connection is back and every channel is
 * confirmed subscribed again: messages sent in the gap were missed, and only then can a re-read see all of them.
 */
export class RedisNotifier implements Notifier {
  readonly #url: string;
  readonly #tls: RedisTlsOptions | undefined;
  readonly #log: Logger;
  readonly #ch: ReturnType<typeof channels>;
  readonly #pingInterval: number;
  readonly #unref: boolean;
  readonly #id = randomUUID();
  readonly #pub: RedisConnection;
  #sub: RedisConnection | null = null;
  #pubUp = false;
  /** The current subscriber confirmed every channel it was opened with. */
  #subUp = false;
  /** SUBSCRIBE commands sent on the current subscriber and not confirmed yet. */
  #pendingSubs = new Set<Promise<boolean>>();
  /** channel → listeners; the source of truth for what the subscriber must listen to. */
  readonly #listeners = new Map<string, Set<(message: string) => void>>();
  readonly #reconnectListeners = new Set<() => void>();
  readonly #statusListeners = new Set<(status: NotifierStatus) => void>();
  /** A connection was lost or replaced since everything was last up: messages may have been missed. */
  #interrupted = false;
  #outageLogged = false;
  #state: "new" | "started" | "stopped" = "new";
  readonly #unsentFinished = new FinishedBacklog();
  #watchdog: PingWatchdog | null = null;

  constructor(options: RedisNotifierOptions) {
    this.#url = options.url;
    this.#tls = options.tls;
    this.#log = options.logger;
    this.#ch = channels(options.schema);
    this.#pingInterval = options.pingInterval ?? 5000;
    this.#unref = options.unref ?? false;
    this.#pub = new RedisConnection({
      url: this.#url,
      tls: this.#tls,
      unref: this.#unref,
      onReady: () => {
        this.#pub.resetRetries();
        this.#pubUp = true;
        this.#maybeUp();
      },
      onLost: (err) => this.#lost("publisher", err),
    });
  }

  /** Both connections are up and every channel listened to is confirmed subscribed on the current subscriber. */
  /** Where wake-ups and finished ids are published now (`host:port`): with Sentinel, the master it found. */
  get publisherAddress(): string | null {
    return this.#pub.address;
  }

  get connected(): boolean {
    return (
      this.#state === "started" && this.#pubUp && (this.#sub === null || (this.#subUp && this.#pendingSubs.size === 0))
    );
  }

  get #closed(): boolean {
    return this.#state === "stopped";
  }

  /** Opens the publisher. Resolves at once: while Redis is away, everything works by polling. */
  async start(): Promise<void> {
    this.#start();
  }

  /** Connecting on first use: a publish or a listener starts the notifier too. */
  #start(): void {
    if (this.#state !== "new") return;
    this.#state = "started";
    void this.#pub.start();
  }

  #openSubscriber(): void {
    this.#sub = new RedisConnection({
      url: this.#url,
      tls: this.#tls,
      // SUBSCRIBEs sent while it connects are queued (#subscribeAll).
      offlineQueue: true,
      unref: this.#unref,
      onOpen: (client) => this.#subscribeAll(client),
      // The subscriber counts as up once its subscriptions are confirmed (#subscribeAll).
      onReady: () => this.#maybeUp(),
      onLost: (err) => this.#lost("subscriber", err),
    });
    void this.#sub.start();
  }

  /** A new subscriber client subscribes every channel of the registry; it is up once all are confirmed. */
  #subscribeAll(client: RedisClient): void {
    this.#subUp = false;
    this.#pendingSubs = new Set();
    const confirmed = [...this.#listeners].map(([channel, set]) => this.#subscribeChannel(client, channel, set));
    void Promise.all(confirmed).then((ok) => {
      // Confirmed subscriptions may come before "ready": node-redis sends them while it sets up the connection.
      const sub = this.#sub;
      if (this.#closed || client !== sub?.client || !client.isOpen || !ok.every(Boolean)) return;
      sub.resetRetries();
      this.#subUp = true;
      this.#maybeUp();
    });
  }

  /** A connection failed or closed (RedisConnection opens another later): note the outage, and log it once. */
  #lost(role: "publisher" | "subscriber", err: Error): void {
    if (role === "publisher") this.#pubUp = false;
    else this.#subUp = false;
    this.#interrupted = true;
    if (!this.#outageLogged) {
      this.#outageLogged = true;
      this.#log.warn("Redis unreachable; falling back to polling until it returns", {
        url: this.#pub.redactedUrl,
        error: err.message,
      });
      this.#status("down");
    }
  }

  #maybeUp(): void {
    if (!this.connected) return;
    this.#sendUnsentFinished();
    if (!this.#interrupted) return;
    this.#interrupted = false;
    if (this.#outageLogged) {
      this.#outageLogged = false;
      this.#log.info("Redis connection restored", { url: this.#pub.redactedUrl });
      this.#status("up");
    }
    for (const l of this.#reconnectListeners) l();
  }

  /** Replaces both connections when pings stop coming back although both report themselves ready. */
  #startWatchdog(): void {
    const ping = this.#ch.ping(this.#id);
    const watchdog = new PingWatchdog({
      intervalMs: this.#pingInterval,
      bothReady: () => !this.#closed && !!this.#pub.client?.isReady && !!this.#sub?.client?.isReady,
      ping: () => void this.#pub.client?.publish(ping, "1").catch(() => {}),
      onSilent: () => {
        this.#log.warn("Redis connection went silent; reconnecting", { url: this.#pub.redactedUrl });
        this.#status("silent");
        this.#replaceConnections();
      },
    });
    this.#listen(ping, () => watchdog.heard());
    watchdog.start();
    this.#watchdog = watchdog;
  }

  #replaceConnections(): void {
    this.#pubUp = false;
    this.#interrupted = true;
    this.#outageLogged = true;
    this.#pub.replace();
    this.#sub?.replace();
  }

  /** Subscribes `channel` on `client`; resolves whether Redis confirmed it. */
  #subscribeChannel(client: RedisClient, channel: string, set: Set<(message: string) => void>): Promise<boolean> {
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
    this.#start();
    let set = this.#listeners.get(channel);
    if (!set) {
      set = new Set();
      this.#listeners.set(channel, set);
      if (this.#closed) {
        // stopped: nothing is opened again
      } else if (this.#sub === null) {
        this.#openSubscriber();
        this.#startWatchdog();
      } else if (this.#sub.client?.isOpen) {
        this.#subscribeChannel(this.#sub.client, channel, set);
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
    // With a Sentinel URL the subscriber has no client while the master is looked up: its SUBSCRIBEs come after.
    const opening = this.#sub && !this.#sub.client ? this.#sub.opening() : null;
    if (!opening && this.#pendingSubs.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise((r) => (timer = setTimeout(r, 1000)).unref());
    if (opening) await Promise.race([opening, limit]);
    if (!this.#interrupted) await Promise.race([Promise.all([...this.#pendingSubs]), limit]);
    clearTimeout(timer);
  }

  #publish(channel: string, message: string): void {
    this.#send((pub) => pub.publish(channel, message));
  }

  /** Sends a command on the publisher now, or once its first connection is up; drops it during an outage. */
  #send(command: (pub: RedisClient) => Promise<unknown>): void {
    this.#start();
    if (this.#closed) return;
    const pub = this.#pub.client;
    if (pub?.isReady) {
      command(pub).catch(() => {});
    } else if (!this.#outageLogged) {
      // Still making the first connection (not an outage): send once it is up rather than drop the message. With a
      // Sentinel URL there is no client yet while the master is being looked up.
      void (pub ? this.#pub.connected(pub) : this.#pub.opening())?.then(() => {
        const c = this.#pub.client;
        if (c?.isReady && !this.#closed) command(c).catch(() => {});
      });
    }
  }

  /**
   * Adds wake tokens in the same round trip as the message: for tasks due now on the queue's counter, for tasks due
   * later on a counter of that due time, which the workers' timers take from when it comes. None when there are at
   * least as many tasks as workers listening (see ANNOUNCE_SCRIPT).
   */
  publishWake(queue: string, count: number, dueAt?: number): void {
    const at = dueAt === undefined ? undefined : Math.round(dueAt);
    const ttl = at === undefined ? WAKE_TOKEN_TTL_MS : Math.max(at - Date.now(), 0) + DUE_TIME_MARGIN_MS;
    const due = at === undefined ? "" : `@${at}`;
    const args = [String(count), String(ttl), this.#ch.wake(queue), `${count}${TOKENS_MARK}${due}`, `${count}${due}`];
    this.#send((pub) => pub.eval(ANNOUNCE_SCRIPT, { keys: [this.#ch.wakeTokens(queue, at)], arguments: args }));
  }

  async takeWakeTokens(queue: string, max: number, dueAt?: number): Promise<number> {
    const pub = this.#pub.client;
    if (this.#closed || !pub?.isReady) return max;
    try {
      const key = this.#ch.wakeTokens(queue, dueAt);
      const took = Number(await pub.eval(TAKE_SCRIPT, { keys: [key], arguments: [String(max)] }));
      return took < 0 ? max : took; // no counter: claim, as every worker did before tokens
    } catch {
      return max; // the counter cannot be asked: the same
    }
  }

  spendWakeTokens(queue: string, claimed: number): void {
    const pub = this.#pub.client;
    if (this.#closed || !pub?.isReady || claimed <= 0) return;
    pub.eval(TAKE_SCRIPT, { keys: [this.#ch.wakeTokens(queue)], arguments: [String(claimed)] }).catch(() => {});
  }

  publishFinished(ids: readonly string[]): void {
    if (ids.length === 0) return;
    this.#start();
    if (this.#closed) return;
    const pub = this.#pub.client;
    // Sent now if possible; kept for later if not, or if the connection turns out to have died under it.
    if (pub?.isReady) pub.publish(this.#ch.finished, ids.join(",")).catch(() => this.#keepUnsent(ids));
    else this.#keepUnsent(ids);
  }

  #keepUnsent(ids: readonly string[]): void {
    if (!this.#closed) this.#unsentFinished.keep(ids);
  }

  #sendUnsentFinished(): void {
    for (const ids of this.#unsentFinished.takeMessages()) {
      this.#pub.client!.publish(this.#ch.finished, ids.join(",")).catch(() => this.#keepUnsent(ids));
    }
  }

  /** Progress goes as JSON `{ id, fraction, message, at }`; a message lost costs a listener latency only. */
  publishProgress(id: string, progress: StoredProgress): void {
    this.#publish(this.#ch.progress, JSON.stringify({ id, ...progress }));
  }

  /** `id:attempt`: the worker holding that attempt stops it; a lost message is heard at that worker's next beat. */
  publishCancel(id: string, attempt: number): void {
    this.#publish(this.#ch.cancel, `${id}:${attempt}`);
  }

  onWake(queues: readonly string[], listener: WakeListener): () => void {
    const offs = queues.map((queue) =>
      this.#listen(this.#ch.wake(queue), (message) => {
        const [count, dueAt] = message.split("@");
        const tokens = count!.endsWith(TOKENS_MARK);
        const n = Number(tokens ? count!.slice(0, -TOKENS_MARK.length) : count) || 1;
        listener(queue, n, dueAt === undefined ? undefined : Number(dueAt) || undefined, tokens);
      }),
    );
    return () => offs.forEach((off) => off());
  }

  onFinished(listener: (id: string) => void): () => void {
    return this.#listen(this.#ch.finished, (message) => {
      for (const id of message.split(",")) listener(id);
    });
  }

  onProgress(listener: (id: string, progress: StoredProgress) => void): () => void {
    return this.#listen(this.#ch.progress, (message) => {
      let p: { id?: unknown; fraction?: unknown; message?: unknown; at?: unknown };
      try {
        p = JSON.parse(message) as typeof p;
      } catch {
        return; // not ours
      }
      if (typeof p.id !== "string" || typeof p.fraction !== "number" || typeof p.at !== "string") return;
      listener(p.id, { fraction: p.fraction, message: typeof p.message === "string" ? p.message : null, at: p.at });
    });
  }

  onCancel(listener: (id: string, attempt: number) => void): () => void {
    return this.#listen(this.#ch.cancel, (message) => {
      const [id, attempt] = message.split(":");
      const n = Number(attempt);
      if (id && Number.isInteger(n)) listener(id, n);
    });
  }

  onReconnect(listener: () => void): () => void {
    this.#reconnectListeners.add(listener);
    return () => this.#reconnectListeners.delete(listener);
  }

  onStatus(listener: (status: NotifierStatus) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  #status(status: NotifierStatus): void {
    for (const l of this.#statusListeners) l(status);
  }

  /** Closes both connections; nothing is sent or heard after. */
  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#state = "stopped";
    this.#watchdog?.stop();
    await Promise.all([this.#pub.stop(), this.#sub?.stop()]);
  }

  /** The same as `stop()`. */
  close(): Promise<void> {
    return this.stop();
  }
}

export interface PingWatchdogOptions {
  /** Milliseconds between pings. */
  intervalMs: number;
  /** Whether both connections report themselves ready (pings are only judged then). */
  bothReady: () => boolean;
  /** Publishes a ping that comes back through the subscriber, which then calls `heard()`. */
  ping: () => void;
  /** A ping did not come back within two intervals: the connections are dead. */
  onSilent: () => void;
}

/**
 * Finds connections gone silent: a half-open socket raises no error, so both connections claim to be up while
 * nothing gets through. A ping is published every interval and must come back through the subscriber.
 */
export class PingWatchdog {
  readonly #o: PingWatchdogOptions;
  #timer: NodeJS.Timeout | null = null;
  /** When the outstanding ping was published; 0 when none is outstanding. */
  #pendingSince = 0;

  constructor(options: PingWatchdogOptions) {
    this.#o = options;
  }

  /** The ping came back. */
  heard(): void {
    this.#pendingSince = 0;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#check(), this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #check(): void {
    if (!this.#o.bothReady()) {
      this.#pendingSince = 0;
      return;
    }
    const now = Date.now();
    if (this.#pendingSince === 0) {
      this.#pendingSince = now;
      this.#o.ping();
    } else if (now - this.#pendingSince > 2 * this.#o.intervalMs) {
      this.#pendingSince = 0;
      this.#o.onSilent();
    }
  }
}

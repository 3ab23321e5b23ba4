import type { Logger } from "../logger.js";
import type { Notifier } from "../notify/index.js";
import { refuse } from "./responses.js";

/*
 * Server-sent events for the pages (GET api/events): hints that something changed, after which a page fetches its
 * own content again. They carry ids, never task data, so a stream needs no more rights than reading the pages.
 *
 * Fed by the client's doorbell: "finished" ids and progress messages from every worker, and wake-ups of the queues
 * the dashboard knows. A task being claimed is announced by nothing, and without Redis nothing is heard at all, so a
 * "refresh" event also goes out on a timer: every REFRESH_MS while the doorbell is down, every SAFETY_MS while it is
 * up. Messages arriving together are sent as one event, at most one per BATCH_MS. The doorbell is listened to only
 * while a stream is open. Streams are bounded (MAX_STREAMS: one more is refused with 503), and one whose reader falls
 * behind is closed; a closed tab's stream ends when its connection does. A stream whose first event nobody reads
 * within UNREAD_MS (a client that asked and went away, a server that never sends the body) is closed too, so such
 * requests cannot fill the bound.
 */

export const MAX_STREAMS = 100;
const BATCH_MS = 250;
const REFRESH_MS = 3000;
const SAFETY_MS = 10_000;
const PING_MS = 20_000;
const UNREAD_MS = 15_000;
/** Events queued for a stream that reads none of them before it is dropped. */
const MAX_QUEUED = 64;
/** Most ids one event names; beyond, it says only that many changed. */
const MAX_IDS = 200;

export const EVENT_STREAM_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-store",
  "x-accel-buffering": "no",
};

interface Stream {
  controller: ReadableStreamDefaultController<Uint8Array>;
  close: () => void;
}

export interface EventsOptions {
  notifier: Notifier;
  logger: Logger;
  /** The queues to hear wake-ups of (read at each refresh). */
  queues: () => Promise<string[]>;
  maxStreams?: number;
  /** Milliseconds a new stream may wait for its first read before it is dropped; default UNREAD_MS. */
  unreadMs?: number;
}

export class DashboardEvents {
  readonly #o: EventsOptions;
  readonly #streams = new Set<Stream>();
  readonly #encoder = new TextEncoder();
  #offs: (() => void)[] = [];
  #wakeQueues = new Set<string>();
  #finished = new Set<string>();
  #progress = new Set<string>();
  #woken = false;
  #flushTimer: NodeJS.Timeout | null = null;
  #refreshTimer: NodeJS.Timeout | null = null;
  #pingTimer: NodeJS.Timeout | null = null;

  constructor(options: EventsOptions) {
    this.#o = options;
  }

  /** Streams open now. */
  get open(): number {
    return this.#streams.size;
  }

  /** A new event stream; ends when `signal` aborts or the reader cancels. Throws a 503 refusal past the bound. */
  stream(signal: AbortSignal): Response {
    if (this.#streams.size >= (this.#o.maxStreams ?? MAX_STREAMS)) {
      throw refuse(503, "TOO_MANY_STREAMS", "too many open event streams: close other dashboard tabs");
    }
    let entry: Stream | null = null;
    let read = false;
    let unread: NodeJS.Timeout | null = null;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        const s: Stream = {
          controller,
          close: () => {
            if (unread !== null) clearTimeout(unread);
            if (!this.#streams.delete(s)) return;
            signal.removeEventListener("abort", s.close);
            try {
              controller.close();
            } catch {
              // already closed or errored by the reader
            }
            if (this.#streams.size === 0) this.#stop();
          },
        };
        entry = s;
        if (this.#streams.size === 0) this.#start();
        this.#streams.add(s);
        signal.addEventListener("abort", s.close);
        unread = setTimeout(() => {
          if (!read) s.close();
        }, this.#o.unreadMs ?? UNREAD_MS);
        unread.unref();
        this.#send(
          s,
          `retry: 3000\nevent: hello\ndata: ${JSON.stringify({ doorbell: this.#o.notifier.connected })}\n\n`,
        );
      },
      // Called once the reader took the first event (the queue holds one before it is asked for more).
      pull: () => {
        read = true;
      },
      cancel: () => entry?.close(),
    });
    if (signal.aborted) entry!.close();
    return new Response(body, { headers: EVENT_STREAM_HEADERS });
  }

  /** Ends every stream (the dashboard is going away). */
  closeAll(): void {
    for (const s of [...this.#streams]) s.close();
  }

  #start(): void {
    const n = this.#o.notifier;
    void n.start();
    this.#offs = [
      n.onFinished((id) => this.#note(this.#finished, id)),
      n.onProgress((id) => this.#note(this.#progress, id)),
      n.onStatus((status) => this.#broadcast("doorbell", { doorbell: status === "up" })),
    ];
    this.#scheduleRefresh();
    this.#pingTimer = setInterval(() => this.#broadcastRaw(": ping\n\n"), PING_MS);
    this.#pingTimer.unref();
    void this.#listenToQueues();
  }

  #stop(): void {
    for (const off of this.#offs) off();
    this.#offs = [];
    this.#wakeQueues.clear();
    for (const t of [this.#flushTimer, this.#refreshTimer, this.#pingTimer]) if (t) clearTimeout(t);
    this.#flushTimer = this.#refreshTimer = this.#pingTimer = null;
    this.#finished.clear();
    this.#progress.clear();
    this.#woken = false;
  }

  /** Hears wake-ups of queues not yet listened to (the notifier subscribes per queue). */
  async #listenToQueues(): Promise<void> {
    let queues: string[];
    try {
      queues = await this.#o.queues();
    } catch (err) {
      this.#o.logger.debug("dashboard events: could not read the queues", { error: String(err) });
      return;
    }
    if (this.#streams.size === 0) return;
    const fresh = queues.filter((q) => !this.#wakeQueues.has(q));
    if (fresh.length === 0) return;
    for (const q of fresh) this.#wakeQueues.add(q);
    this.#offs.push(
      this.#o.notifier.onWake(fresh, () => {
        this.#woken = true;
        this.#scheduleFlush();
      }),
    );
  }

  #note(set: Set<string>, id: string): void {
    if (set.size < MAX_IDS) set.add(id);
    else set.add("…");
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushTimer !== null || this.#streams.size === 0) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = null;
      const data = {
        finished: [...this.#finished],
        progress: [...this.#progress],
        wake: this.#woken,
      };
      this.#finished.clear();
      this.#progress.clear();
      this.#woken = false;
      this.#broadcast("change", data);
    }, BATCH_MS);
    this.#flushTimer.unref();
  }

  #scheduleRefresh(): void {
    const ms = this.#o.notifier.connected ? SAFETY_MS : REFRESH_MS;
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = null;
      if (this.#streams.size === 0) return;
      this.#broadcast("refresh", { doorbell: this.#o.notifier.connected });
      void this.#listenToQueues();
      this.#scheduleRefresh();
    }, ms);
    this.#refreshTimer.unref();
  }

  #broadcast(event: string, data: object): void {
    this.#broadcastRaw(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  #broadcastRaw(text: string): void {
    for (const s of [...this.#streams]) this.#send(s, text);
  }

  #send(s: Stream, text: string): void {
    if ((s.controller.desiredSize ?? 0) < -MAX_QUEUED) return s.close();
    try {
      s.controller.enqueue(this.#encoder.encode(text));
    } catch {
      s.close();
    }
  }
}

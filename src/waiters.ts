import { isConnectionError } from "./db/errors.js";
import type { Queryable } from "./db/statements.js";
import { SkiplockError, TaskNotFoundError } from "./errors.js";
import type { Logger } from "./logger.js";
import type { Notifier } from "./notify/index.js";
import { readWaitedTasks } from "./sql/waited.js";
import { rowToTask, type StoredProgress, type Task, type TaskProgress } from "./task.js";

/**
 * How long a waiter trusts its last read while the doorbell is up (at least its poll interval). A finish can still
 * go unannounced: a process whose Redis connection was down when it wrote one keeps the id to send later, but may
 * die before it does.
 */
const SAFETY_NET_MS = 10_000;
/**
 * After this client's subscriber comes back, other processes may still be reconnecting, holding the ids they
 * finished meanwhile: waiters poll at their interval this long before trusting messages again.
 */
const RECONNECT_GRACE_MS = 5_000;
/** Ids per read statement: bounds the rows (and results) one query brings back. */
const READ_BATCH = 1000;

interface Waiter {
  resolve: (task: Task<never> | null) => void;
  reject: (err: unknown) => void;
  pollMs: number;
  timer: NodeJS.Timeout | undefined;
  /** Its timeout passed before the row was read once: it resolves after that first read. */
  expired: boolean;
  /** Its onProgress, a watcher of the entry while it waits. */
  onProgress: ProgressListener | undefined;
}

type ProgressListener = (progress: TaskProgress) => void;

interface Entry {
  waiters: Set<Waiter>;
  /** The shortest poll interval among its waiters, in ms. */
  pollMs: number;
  /** When the last read of the row started; 0 before the first. */
  readAt: number;
  /** The first read has come back (the row exists and was not final then). */
  seen: boolean;
  /** The last read started while every subscription was confirmed: a finish since then was announced. */
  trusted: boolean;
  /** Progress listeners (client.onProgress, waitForCompletion's onProgress). */
  watchers: Set<ProgressListener>;
  /** The time (epoch ms) of the last progress given to the watchers; -1 before any. */
  progressAt: number;
}

/**
 * Every `waitForCompletion` of one client, served by one loop. Waiters are kept by task id; all the ids due for a
 * read go in one statement per batch (sql/waited.ts), one statement at a time, so any number of waiters costs the
 * pool one connection. An id is due when it is first waited on; when a "finished" message names it (a map lookup per
 * id named, whatever the number of waiters); after the subscriber reconnected (messages may have been missed:
 * every id at once); and on a timer: every poll interval while Redis is unavailable, only every safety-net interval
 * while it is up and the last read can be trusted.
 *
 * Progress listeners ride on the same entries: a progress message from Redis reaches them at once, and every read of
 * a row (live rows come back with their progress) gives them a change they have not seen, so without Redis they hear
 * it at the next poll. Progress only moves forward: a value no newer than the last one given is dropped.
 */
export class Waiters {
  readonly #q: Queryable;
  readonly #tasks: string;
  readonly #notifier: Notifier;
  readonly #entries = new Map<string, Entry>();
  /** Ids to read in the next pass. */
  readonly #due = new Set<string>();
  #reading = false;
  #timer: NodeJS.Timeout | null = null;
  #timerMs = Infinity;
  #graceUntil = 0;
  #subscribed: Promise<void> | null = null;
  #progressSubscribed = false;
  #offs: (() => void)[] = [];
  #closed = false;
  readonly #log: Logger | undefined;

  constructor(q: Queryable, tasks: string, notifier: Notifier, logger?: Logger) {
    this.#q = q;
    this.#tasks = tasks;
    this.#notifier = notifier;
    this.#log = logger;
  }

  /** Waits for task `id` to be final; null once `timeoutMs` passes. `onProgress` hears its progress meanwhile. */
  wait<R>(
    id: string,
    pollMs: number,
    timeoutMs: number | undefined,
    onProgress?: ProgressListener,
  ): Promise<Task<R> | null> {
    if (this.#closed) return Promise.reject(closedError(id));
    this.#subscribe();
    if (onProgress) this.#subscribeProgress();
    return new Promise<Task<R> | null>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: resolve as Waiter["resolve"],
        reject,
        pollMs,
        timer: undefined,
        expired: false,
        // Its own function: the same listener given to two waits is two watchers, each removed with its waiter.
        onProgress: onProgress && ((p) => onProgress(p)),
      };
      const entry = this.#entry(id, pollMs);
      entry.waiters.add(waiter);
      if (waiter.onProgress) entry.watchers.add(waiter.onProgress);
      if (timeoutMs !== undefined) waiter.timer = setTimeout(() => this.#expire(id, waiter), timeoutMs);
      this.#arm(pollMs);
      this.#kick();
    });
  }

  /** Calls `listener` with task `id`'s progress until the task is final or the returned function is called. */
  watch(id: string, listener: ProgressListener, pollMs: number): () => void {
    if (this.#closed) return () => {};
    this.#subscribe();
    this.#subscribeProgress();
    // Its own function, so that the same listener given twice is two watchers, each removed by its own call.
    const watcher: ProgressListener = (p) => listener(p);
    this.#entry(id, pollMs).watchers.add(watcher);
    this.#arm(pollMs);
    this.#kick();
    return () => {
      const entry = this.#entries.get(id);
      if (!entry?.watchers.delete(watcher)) return;
      this.#dropIfUnused(id, entry);
    };
  }

  #entry(id: string, pollMs: number): Entry {
    let entry = this.#entries.get(id);
    if (!entry) {
      entry = {
        waiters: new Set(),
        pollMs,
        readAt: 0,
        seen: false,
        trusted: false,
        watchers: new Set(),
        progressAt: -1,
      };
      this.#entries.set(id, entry);
      this.#due.add(id);
    }
    entry.pollMs = Math.min(entry.pollMs, pollMs);
    return entry;
  }

  /** Resolves the waiters of a task this client itself made final, with the row its write returned. */
  settle(task: Task): void {
    this.#finish(task.id, (w) => w.resolve(task as Task<never>));
  }

  /** Rejects every waiter: the client is closing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const off of this.#offs) off();
    if (this.#timer) clearTimeout(this.#timer);
    for (const id of [...this.#entries.keys()]) this.#finish(id, (w) => w.reject(closedError(id)));
  }

  /** Listens to the doorbell from the first wait on (a client that never waits subscribes to nothing). */
  #subscribe(): void {
    if (this.#subscribed) return;
    this.#offs.push(
      this.#notifier.onFinished((id) => {
        if (!this.#entries.has(id)) return;
        this.#due.add(id);
        this.#kick();
      }),
      this.#notifier.onReconnect(() => {
        this.#graceUntil = Date.now() + RECONNECT_GRACE_MS;
        for (const id of this.#entries.keys()) this.#due.add(id);
        this.#kick();
      }),
    );
    // Reads start once the subscription is confirmed, so a finish after a read is heard.
    this.#subscribed = this.#notifier.ready();
  }

  /** Listens to progress messages from the first progress listener on (they can be many: only when needed). */
  #subscribeProgress(): void {
    if (this.#progressSubscribed) return;
    this.#progressSubscribed = true;
    this.#offs.push(
      this.#notifier.onProgress((id, progress) => {
        const entry = this.#entries.get(id);
        if (entry && entry.watchers.size > 0) this.#progress(entry, progress);
      }),
    );
    const previous = this.#subscribed;
    this.#subscribed = Promise.all([previous, this.#notifier.ready()]).then(() => {});
  }

  /** Gives `stored` to the entry's watchers if it is newer than what they had. */
  #progress(entry: Entry, stored: StoredProgress | null): void {
    if (!stored) return;
    const at = Date.parse(stored.at);
    if (!(at > entry.progressAt)) return;
    entry.progressAt = at;
    const progress: TaskProgress = { fraction: stored.fraction, message: stored.message ?? null, at: new Date(at) };
    for (const l of [...entry.watchers]) {
      try {
        l(progress);
      } catch (err) {
        this.#log?.error("a progress listener threw; ignored", { error: (err as Error)?.message ?? String(err) });
      }
    }
  }

  #expire(id: string, waiter: Waiter): void {
    const entry = this.#entries.get(id);
    if (!entry?.waiters.has(waiter)) return;
    // A timeout never skips the first read: an unknown id still throws, and a finished task is still returned.
    if (!entry.seen) {
      waiter.expired = true;
      return;
    }
    this.#drop(id, entry, waiter);
    waiter.resolve(null);
  }

  #drop(id: string, entry: Entry, waiter: Waiter): void {
    clearTimeout(waiter.timer);
    entry.waiters.delete(waiter);
    if (waiter.onProgress) entry.watchers.delete(waiter.onProgress);
    this.#dropIfUnused(id, entry);
  }

  #dropIfUnused(id: string, entry: Entry): void {
    if (entry.waiters.size === 0 && entry.watchers.size === 0 && this.#entries.get(id) === entry) {
      this.#entries.delete(id);
      this.#due.delete(id);
      if (this.#entries.size === 0 && this.#timer) {
        clearTimeout(this.#timer);
        this.#timer = null;
        this.#timerMs = Infinity;
      }
    }
  }

  /** The task is final (or missing): its waiters settle, its watchers hear no more. */
  #finish(id: string, settle: (w: Waiter) => void): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    entry.watchers.clear();
    for (const w of [...entry.waiters]) {
      this.#drop(id, entry, w);
      settle(w);
    }
    this.#dropIfUnused(id, entry);
  }

  /** Ticks every `ms` at most (the shortest poll interval of any waiter). The timer keeps the process alive. */
  #arm(ms: number): void {
    if (this.#closed || (this.#timer && ms >= this.#timerMs)) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerMs = ms;
    this.#timer = setTimeout(() => this.#tick(), ms);
  }

  #tick(): void {
    this.#timer = null;
    this.#timerMs = Infinity;
    if (this.#entries.size === 0 || this.#closed) return;
    const now = Date.now();
    const trusting = this.#notifier.connected && now >= this.#graceUntil;
    let next = Infinity;
    for (const [id, e] of this.#entries) {
      next = Math.min(next, e.pollMs);
      if (e.readAt === 0) continue; // its first read is already due
      const interval = trusting && e.trusted ? Math.max(SAFETY_NET_MS, e.pollMs) : e.pollMs;
      // Half a tick of slack: a read started just after the last tick counts as a tick old.
      if (now - e.readAt >= interval - e.pollMs / 2) this.#due.add(id);
    }
    this.#arm(next);
    this.#kick();
  }

  #kick(): void {
    if (this.#reading || this.#due.size === 0 || this.#closed) return;
    this.#reading = true;
    void this.#readDue().finally(() => {
      this.#reading = false;
      this.#kick();
    });
  }

  async #readDue(): Promise<void> {
    await this.#subscribed;
    const ids = [...this.#due].filter((id) => this.#entries.has(id));
    this.#due.clear();
    for (let i = 0; i < ids.length && !this.#closed; i += READ_BATCH) {
      await this.#read(ids.slice(i, i + READ_BATCH));
    }
  }

  async #read(ids: string[]): Promise<void> {
    const startedAt = Date.now();
    const trusted = this.#notifier.connected;
    for (const id of ids) {
      const e = this.#entries.get(id);
      if (e) {
        e.readAt = startedAt;
        e.trusted = trusted;
      }
    }
    let rows;
    try {
      rows = await readWaitedTasks(this.#q, this.#tasks, ids);
    } catch (err) {
      if (isConnectionError(err)) {
        // Postgres is unreachable for now: read again after the poll interval. A waiter whose timeout passed
        // gets null, as it would have had the read come back with a running task.
        for (const id of ids) {
          const e = this.#entries.get(id);
          if (!e) continue;
          e.trusted = false;
          this.#resolveExpired(id, e);
        }
        return;
      }
      for (const id of ids) this.#finish(id, (w) => w.reject(err));
      return;
    }
    for (const r of rows) {
      if (r.state === "finished") {
        const entry = this.#entries.get(r.id);
        // The last progress first (a listener hears it before the waiter resolves).
        if (entry && entry.watchers.size > 0) this.#progress(entry, r.row.progress);
        const task = rowToTask(r.row);
        this.#finish(r.id, (w) => w.resolve(task as Task<never>));
      } else if (r.state === "missing") {
        this.#finish(r.id, (w) => w.reject(new TaskNotFoundError(r.id)));
      } else {
        const e = this.#entries.get(r.id);
        if (!e) continue;
        e.seen = true;
        if (e.watchers.size > 0) this.#progress(e, r.progress);
        this.#resolveExpired(r.id, e);
      }
    }
  }

  #resolveExpired(id: string, e: Entry): void {
    for (const w of [...e.waiters]) {
      if (!w.expired) continue;
      this.#drop(id, e, w);
      w.resolve(null);
    }
  }
}

function closedError(id: string): SkiplockError {
  return new SkiplockError("CLIENT_CLOSED", `the client was closed while waiting for task ${id}`);
}

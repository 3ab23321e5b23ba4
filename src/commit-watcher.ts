import type { Queryable } from "./db/statements.js";
import type { Logger } from "./logger.js";

/*
 * Tasks enqueued in a caller's own transaction exist only once the caller commits, and nothing tells skiplock when
 * that is. The watcher keeps the id of each such transaction (pg_current_xact_id(), read by the insert itself) and
 * asks Postgres about all of them in one query: soon after the enqueue, then less and less often as a transaction
 * stays open. A committed one is handed to `onCommit` (which rings the bell); an aborted one is dropped. A
 * transaction counts as committed only once it is visible to a new snapshot: pg_xact_status says "committed" a
 * moment before other sessions can see the rows, and a worker woken in that moment would claim nothing.
 * See docs/architecture.md, Enqueueing in the caller's transaction.
 */
const STATUS = `SELECT x AS xid,
       pg_xact_status(x::xid8) = 'committed' AND pg_visible_in_snapshot(x::xid8, pg_current_snapshot()) AS committed,
       coalesce(pg_xact_status(x::xid8), 'aborted') = 'aborted' AS aborted
  FROM unnest($1::text[]) AS x`;

/** First re-check after an enqueue, and the floor of the interval, in ms. */
const MIN_INTERVAL_MS = 2;
/** The interval grows with the age of the youngest open transaction (a quarter of it), up to this. */
const MAX_INTERVAL_MS = 1000;
/** A transaction open this long is given up on: workers' polling finds its tasks once it commits. */
const GIVE_UP_MS = 10 * 60_000;
/** Transactions watched at once; beyond it the oldest is given up on. */
const MAX_WATCHED = 10_000;

interface Watched<T> {
  items: T[];
  since: number;
}

export class CommitWatcher<T> {
  readonly #q: Queryable;
  readonly #onCommit: (items: T[]) => void;
  readonly #logger: Logger;
  readonly #watched = new Map<string, Watched<T>>();
  #timer: NodeJS.Timeout | null = null;
  #dueAt = 0;
  #checking: Promise<void> | null = null;
  #stopped = false;

  constructor(q: Queryable, onCommit: (items: T[]) => void, logger: Logger) {
    this.#q = q;
    this.#onCommit = onCommit;
    this.#logger = logger;
  }

  /** Calls onCommit with `items` once transaction `xid` has committed; forgets them if it aborts. */
  watch(xid: string, items: readonly T[]): void {
    if (this.#stopped) return;
    const w = this.#watched.get(xid);
    if (w) w.items.push(...items);
    else {
      if (this.#watched.size >= MAX_WATCHED) this.#watched.delete(this.#watched.keys().next().value!);
      this.#watched.set(xid, { items: [...items], since: Date.now() });
    }
    this.#schedule(MIN_INTERVAL_MS);
  }

  /** One last check (so a script that commits and closes still rings), then nothing more. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#checking;
    if (this.#watched.size > 0) await this.#check();
    this.#watched.clear();
  }

  #schedule(ms: number): void {
    if (this.#checking || this.#stopped) return;
    if (this.#timer) {
      // A young transaction is not kept waiting behind the long interval of an old one.
      if (this.#dueAt <= Date.now() + ms) return;
      clearTimeout(this.#timer);
    }
    this.#dueAt = Date.now() + ms;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#checking = this.#check().finally(() => {
        this.#checking = null;
        this.#next();
      });
    }, ms);
    // A transaction that never commits must not keep the process alive; workers poll for its tasks anyway.
    this.#timer.unref();
  }

  #next(): void {
    if (this.#watched.size === 0) return;
    let youngest = Infinity;
    const now = Date.now();
    for (const w of this.#watched.values()) youngest = Math.min(youngest, now - w.since);
    this.#schedule(Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, youngest / 4)));
  }

  async #check(): Promise<void> {
    const xids = [...this.#watched.keys()];
    let rows: { xid: string; committed: boolean | null; aborted: boolean }[];
    try {
      ({ rows } = await this.#q.query({ text: STATUS, values: [xids] }));
    } catch (err) {
      this.#logger.warn("could not check enqueueing transactions; workers will find their tasks by polling", {
        error: (err as Error).message,
      });
      return;
    }
    const now = Date.now();
    for (const r of rows) {
      const w = this.#watched.get(r.xid);
      if (!w) continue;
      if (r.committed) {
        this.#watched.delete(r.xid);
        this.#onCommit(w.items);
      } else if (r.aborted || now - w.since > GIVE_UP_MS) {
        this.#watched.delete(r.xid);
      }
    }
  }
}

import type pg from "pg";
import { Gauge, type Registry } from "prom-client";
import { countTasksIn, DEFAULT_EXACT_LIMIT, type TaskCounts } from "./admin.js";
import type { Logger } from "./logger.js";
import { oldestDueAges, type QueueAge } from "./sql/oldest-due.js";
import { TASK_STATUSES } from "./task.js";

/** Where the database gauges read from: a worker's store while it runs, or a client's (the dashboard's metrics). */
export interface DatabaseGaugeSource {
  /** The database; null while there is none to read (the gauges then keep their last values). */
  db(): { pool: pg.Pool; tasks: string; schema: string } | null;
  /** Queues that always get an oldest-due gauge, 0 when nothing is due. */
  queues(): string[];
  logger: Logger;
}

/**
 * A value read from the database at most once per `ttlMs`, shared by the scrapes that come meanwhile: a scrape every
 * second of a big table costs one count every few seconds. A failed read keeps the last value.
 */
class Cached<T> {
  #value: T | null = null;
  #at = -Infinity;
  #reading: Promise<T | null> | null = null;
  constructor(
    readonly ttlMs: number,
    readonly read: () => Promise<T> | null,
    readonly failed: (err: Error) => void,
  ) {}

  get(): Promise<T | null> {
    if (performance.now() - this.#at < this.ttlMs) return Promise.resolve(this.#value);
    if (this.#reading) return this.#reading;
    const reading = this.read();
    if (!reading) return Promise.resolve(this.#value);
    const r = (this.#reading = reading.then(
      (v) => {
        this.#value = v;
        this.#at = performance.now();
        return v;
      },
      (err: Error) => {
        this.failed(err);
        return this.#value;
      },
    ));
    void r.finally(() => {
      if (this.#reading === r) this.#reading = null;
    });
    return r;
  }
}

/**
 * `skiplock_tasks{queue,status}` and `skiplock_queue_oldest_due_seconds{queue}`: read when scraped, through a cache
 * of `cacheSeconds`, with statements that stay cheap on a big table (a capped count, one index walk per queue).
 */
export function registerDatabaseGauges(registers: Registry[], source: DatabaseGaugeSource, cacheSeconds: number): void {
  const ttl = cacheSeconds * 1000;
  const warn = (what: string) => (err: Error) =>
    source.logger.warn(`could not read ${what} for metrics; keeping the last values`, { error: err.message });
  const counts = new Cached<TaskCounts>(
    ttl,
    () => {
      const db = source.db();
      return db && countTasksIn(db.pool, db.tasks, db.schema, DEFAULT_EXACT_LIMIT);
    },
    warn("task counts"),
  );
  const ages = new Cached<QueueAge[]>(
    ttl,
    () => {
      const db = source.db();
      return db && oldestDueAges(db.pool, db.tasks);
    },
    warn("the oldest due tasks"),
  );
  new Gauge({
    name: "skiplock_tasks",
    help: "Tasks per queue and status (COMPLETED may be estimated on a big table), cached for a few seconds.",
    labelNames: ["queue", "status"],
    registers,
    async collect() {
      const c = await counts.get();
      if (!c) return;
      this.reset();
      for (const [queue, byStatus] of Object.entries(c.queues)) {
        for (const status of TASK_STATUSES) this.set({ queue, status }, byStatus[status]);
      }
    },
  });
  new Gauge({
    name: "skiplock_queue_oldest_due_seconds",
    help: "Seconds the oldest due PENDING task of each queue has waited (0 when none is due).",
    labelNames: ["queue"],
    registers,
    async collect() {
      const rows = await ages.get();
      if (!rows) return;
      this.reset();
      for (const queue of source.queues()) this.set({ queue }, 0);
      for (const r of rows) this.set({ queue: r.queue }, r.age);
    },
  });
}

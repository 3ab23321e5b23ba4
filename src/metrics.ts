import type pg from "pg";
import { Gauge, Registry } from "prom-client";
import { TaskTally, type Outcome } from "./metrics-tally.js";
import { countTasksIn, DEFAULT_EXACT_LIMIT } from "./admin.js";
import { InvalidOptionError } from "./errors.js";
import type { Logger } from "./logger.js";
import { assertKnownKeys } from "./options.js";
import { oldestDueAges, type QueueAge } from "./sql/oldest-due.js";
import type { TaskCounts } from "./admin.js";
import { TASK_STATUSES } from "./task.js";
import type { WorkerEvents } from "./worker/events.js";

export interface MetricsOptions {
  /**
   * A prom-client Registry to put skiplock's metrics in (your own, beside your metrics); default a registry of the
   * worker's own, never prom-client's global one, so two workers in a process and your metrics never collide (to
   * serve yours with a worker's, `Registry.merge([worker.metricsRegistry, yours])`). One registry takes one worker's
   * metrics.
   */
  registry?: Registry;
  /** Seconds the task counts and oldest-due ages are kept between scrapes; default 5. */
  cacheSeconds?: number;
  /** Upper bounds of the task duration histogram's buckets, in seconds. */
  durationBuckets?: number[];
}

const METRICS_OPTION_KEYS = [
  "registry",
  "cacheSeconds",
  "durationBuckets",
] as const satisfies readonly (keyof MetricsOptions)[];

/** From a few milliseconds to an hour: short tasks and long ones both land in buckets that tell them apart. */
export const DEFAULT_DURATION_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
];

/** The name label of a task whose name this worker has no handler for: names come from rows, ids never go in labels. */
export const UNKNOWN_TASK = "(unknown)";

/** What the metrics read from the worker: its events, its registered names, what runs, and its database. */
export interface MetricsSource {
  on<K extends keyof WorkerEvents>(event: K, listener: (...args: WorkerEvents[K]) => void): unknown;
  /** Whether a handler is registered under this name (bounds the name label). */
  knows(name: string): boolean;
  /** The queues the worker claims from: they always have a running gauge, 0 when idle. */
  queues(): string[];
  /** The queue of each task running now. */
  runningQueues(): Iterable<string>;
  /** The worker's database while it runs; null before start and after stop (the gauges then keep their last values). */
  db(): { pool: pg.Pool; tasks: string; schema: string } | null;
  logger: Logger;
}

/** Checks `metrics` options, naming the wrong one. */
export function resolveMetricsOptions(options: MetricsOptions | boolean | undefined): Required<MetricsOptions> | null {
  if (options === false || options === undefined) return null;
  const o = options === true ? {} : options;
  if (typeof o !== "object" || o === null) throw new InvalidOptionError("metrics", "expected true, false or an object");
  assertKnownKeys("metrics", o, METRICS_OPTION_KEYS);
  if (o.registry !== undefined && !(o.registry instanceof Registry)) {
    throw new InvalidOptionError("metrics.registry", "expected a prom-client Registry");
  }
  const cacheSeconds = o.cacheSeconds ?? 5;
  if (typeof cacheSeconds !== "number" || !Number.isFinite(cacheSeconds) || cacheSeconds < 0) {
    throw new InvalidOptionError("metrics.cacheSeconds", "expected a number of seconds >= 0");
  }
  const buckets = o.durationBuckets ?? DEFAULT_DURATION_BUCKETS;
  if (!Array.isArray(buckets) || buckets.length === 0 || buckets.some((b) => typeof b !== "number" || !(b > 0))) {
    throw new InvalidOptionError("metrics.durationBuckets", "expected a non-empty array of positive numbers");
  }
  return { registry: o.registry ?? new Registry(), cacheSeconds, durationBuckets: [...buckets].sort((a, b) => a - b) };
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
 * A worker's Prometheus metrics (prom-client), fed by its task events: ending a task costs a few additions
 * (metrics-tally.ts), nothing else. The gauges of the database (`skiplock_tasks`, the oldest due task's age) are
 * read when scraped, through a cache, with statements that stay cheap on a big table; the running gauge is read from
 * the worker's slots when scraped.
 */
export class WorkerMetrics {
  readonly registry: Registry;

  constructor(source: MetricsSource, options: Required<MetricsOptions>) {
    const registers = [(this.registry = options.registry)];
    for (const name of [
      "skiplock_tasks",
      "skiplock_tasks_processed_total",
      "skiplock_task_duration_seconds",
      "skiplock_queue_oldest_due_seconds",
      "skiplock_worker_running",
    ]) {
      if (this.registry.getSingleMetric(name)) {
        throw new InvalidOptionError(
          "metrics.registry",
          `already holds ${name} (another worker's?): one registry takes one worker's metrics; leave the others their own`,
        );
      }
    }
    const ttl = options.cacheSeconds * 1000;
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
    new Gauge({
      name: "skiplock_worker_running",
      help: "Tasks this worker is running now, per queue.",
      labelNames: ["queue"],
      registers,
      collect() {
        this.reset();
        for (const queue of source.queues()) this.set({ queue }, 0);
        for (const queue of source.runningQueues()) this.inc({ queue });
      },
    });
    const tally = new TaskTally(this.registry, options.durationBuckets);
    const name = (n: string) => (source.knows(n) ? n : UNKNOWN_TASK);
    const ended =
      (outcome: Outcome) =>
      ({ task, duration }: { task: { queue: string; name: string }; duration: number }) =>
        tally.ended(task.queue, name(task.name), outcome, duration);
    source.on("task:completed", ended("completed"));
    source.on("task:failed", ended("failed"));
    source.on("task:retrying", ended("retried"));
    source.on("task:cancelled", ended("cancelled"));
    source.on("task:swept", (t) => tally.counted(t.queue, name(t.name), "swept"));
  }

  /** The metrics in Prometheus text format (every metric of the registry, yours too when you gave yours). */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

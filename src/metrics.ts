import type pg from "pg";
import { Gauge, Registry } from "prom-client";
import { TaskTally, type Outcome } from "./metrics-tally.js";
import { InvalidOptionError } from "./errors.js";
import type { Logger } from "./logger.js";
import { assertKnownKeys } from "./options.js";
import { registerDatabaseGauges } from "./metrics-database.js";
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
    registerDatabaseGauges(registers, source, options.cacheSeconds);
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

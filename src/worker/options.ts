import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import {
  resolveConnection,
  validateInteger,
  validateQueueName,
  validateSeconds,
  type ConnectionConfig,
  type ConnectionOptions,
} from "../config.js";
import { InvalidOptionError } from "../errors.js";
import { payloadLimit } from "../json.js";
import { resolveLogger, type Logger } from "../logger.js";
import { resolveMetricsOptions, type MetricsOptions } from "../metrics.js";
import { assertKnownKeys } from "../options.js";
import { resolvePgbouncer } from "../db/pgbouncer.js";
import type { Backoff } from "../sql/finish.js";
import type { CheckedSchedules, Schedule } from "../schedule/definition.js";
import { validateIsolation, type Isolation } from "../task.js";
import type { TaskMap } from "./registry.js";

export interface WorkerOptions<S extends readonly Schedule[] = readonly Schedule[]> extends ConnectionOptions {
  /** The handlers this worker runs: `{ name: fn }`, `{ key: defineTask(…) }` or an array of definitions. */
  tasks?: TaskMap;
  /**
   * Path of a module exporting the handlers (as `--tasks`), instead of or as well as `tasks`, resolved from the
   * working directory. Needed for thread isolation: each task thread imports it.
   */
  tasksModule?: string;
  /**
   * "inline" (default): handlers run on the worker's main thread; a timeout fails the task and fires its signal,
   * but cannot stop code that never yields. "thread": each attempt runs in a worker thread that is terminated at
   * the timeout. Tasks defined with their own `isolation` keep it.
   */
  isolation?: Isolation;
  /** Most tasks running at once; default 1. */
  concurrency?: number;
  /** Retries for tasks enqueued without `maxRetries` (`--retry`); default 0. */
  maxRetries?: number;
  /** Queues to claim from; default "default" and every queue a registered defineTask names. */
  queues?: string[];
  /** Seconds between claims when no wake-up arrives (and the only pace without Redis); default 1. */
  pollInterval?: number;
  /** Seconds between heartbeats; default 5. */
  heartbeatInterval?: number;
  /** Seconds without a heartbeat after which a running task is taken back; default 30. */
  staleAfter?: number;
  /** Seconds between stale-task sweeps; default half of staleAfter. */
  sweepInterval?: number;
  /** Seconds `stop()` lets running tasks finish before handing them back; default 30. */
  shutdownTimeout?: number;
  /**
   * Seconds a cancelled task's handler may take to settle after its signal fired before it is abandoned: written
   * CANCELLED and its slot freed (in thread isolation, its thread terminated); default 10.
   */
  cancelGrace?: number;
  /** Largest task result stored, in bytes of UTF-8 JSON; a larger one fails its task (PayloadTooLargeError). Default 32 MiB. */
  maxResultBytes?: number;
  /** Retry backoff in seconds: base * 2^retryCount, capped at max, with jitter; default { base: 1, max: 3600 }. */
  retryBackoff?: Partial<Backoff>;
  logger?: Logger;
  /** Identifies this worker in task rows and logs; default host:pid:random. */
  workerId?: string;
  /**
   * Postgres connections for outcome writes and sweeps; default 4. Claims and the heartbeat have one each, so a
   * worker holds at most poolSize + 2 (docs/architecture.md, PgBouncer and connections). To bound the total, or go
   * below 3, give `maxConnections` instead.
   */
  poolSize?: number;
  /**
   * The most Postgres connections this worker holds, all included; default poolSize + 2 (6). 3 or more: a pool of
   * N - 2, a claim connection and the heartbeat thread's. 2: a pool of one that also carries the claims (they then
   * commit synchronously), and the heartbeat thread's. 1: one connection for everything; the heartbeat runs on the
   * main thread through it, so a handler that blocks the event loop delays the beats too (give CPU-bound handlers
   * `isolation: "thread"`, and a staleAfter beyond the longest block). See docs/architecture.md, One connection.
   */
  maxConnections?: number;
  /**
   * Connect through PgBouncer in transaction pooling mode (`pool_mode = transaction`): unnamed statements, no session
   * settings. Default SKIPLOCK_PGBOUNCER (`1` or `true`), else false. Harmless on a direct connection.
   */
  pgbouncer?: boolean;
  /**
   * Most claimed tasks held ready beyond the free slots, so a slot that frees starts its next task at once instead
   * of waiting for a claim round trip, and claims come in large batches; default 1024 (or `concurrency`, if larger).
   * The worker holds only as many as its slots will start within 50 ms at the pace tasks are finishing, so with
   * tasks that take seconds it holds none, and never hoards work another worker could start.
   */
  prefetch?: number;
  /**
   * Run this many tasks (attempts that reach an outcome), then stop as `stop()` does; claims never take more than
   * that. Default: no limit.
   */
  maxTasks?: number;
  /**
   * Cron schedules this worker enqueues, one task per tick across the cluster (see Schedules); default the
   * `schedules` export of the tasks module, if any. A worker that declares schedules marks the stored ones it does
   * not declare removed.
   */
  schedules?: CheckedSchedules<S>;
  /**
   * Prometheus metrics (`worker.metrics()`, `run-worker --metrics-port`): true, or options (your own prom-client
   * `registry`, `cacheSeconds`, `durationBuckets`). Default false: no listener, nothing counted; metrics cost about
   * 1 µs of CPU per task (docs/architecture.md, Metrics).
   */
  metrics?: boolean | MetricsOptions;
}

const WORKER_OPTION_KEYS = [
  "databaseUrl",
  "redisUrl",
  "redisTls",
  "schema",
  "tasks",
  "tasksModule",
  "isolation",
  "concurrency",
  "maxRetries",
  "queues",
  "pollInterval",
  "heartbeatInterval",
  "staleAfter",
  "sweepInterval",
  "shutdownTimeout",
  "cancelGrace",
  "maxResultBytes",
  "retryBackoff",
  "logger",
  "workerId",
  "poolSize",
  "maxConnections",
  "pgbouncer",
  "prefetch",
  "maxTasks",
  "schedules",
  "metrics",
] as const satisfies readonly (keyof WorkerOptions)[];

/** A worker's settings, every default filled in and checked. Times are in seconds, as in the options. */
export interface WorkerConfig {
  connection: ConnectionConfig;
  tasks: TaskMap | undefined;
  tasksModule: string | undefined;
  isolation: Isolation;
  concurrency: number;
  maxRetries: number;
  /** null: "default" plus the queues of the registered definitions. */
  queues: string[] | null;
  pollInterval: number;
  heartbeatInterval: number;
  staleAfter: number;
  sweepInterval: number;
  shutdownTimeout: number;
  cancelGrace: number;
  maxResultBytes: number;
  retryBackoff: Backoff;
  logger: Logger;
  workerId: string;
  poolSize: number;
  /** Every connection the worker holds: poolSize, plus the claim connection and the heartbeat's when they exist. */
  maxConnections: number;
  /** Claims have a connection of their own (maxConnections >= 3); otherwise they go through the pool. */
  claimConnection: boolean;
  /** The heartbeat has a thread and a connection of its own (maxConnections >= 2); otherwise it beats on the pool. */
  heartbeatThread: boolean;
  pgbouncer: boolean;
  prefetch: number;
  /** null: no limit. */
  maxTasks: number | null;
  schedules: readonly Schedule[] | undefined;
  /** null: no metrics. */
  metrics: Required<MetricsOptions> | null;
}

/** Fills in every default, then checks the whole config, naming the option that is wrong. */
export function resolveWorkerOptions(options: WorkerOptions): WorkerConfig {
  assertKnownKeys("new Worker", options, WORKER_OPTION_KEYS);
  if (!options || typeof options !== "object" || (!options.tasks && !options.tasksModule)) {
    throw new InvalidOptionError(
      "tasks",
      "a Worker needs the handlers it runs: new Worker({ tasks: { name: fn } }) or { tasksModule: path }",
    );
  }
  const concurrency = options.concurrency ?? 1;
  const staleAfter = options.staleAfter ?? 30;
  const config: WorkerConfig = {
    connection: resolveConnection(options),
    tasks: options.tasks,
    tasksModule: options.tasksModule,
    isolation: options.isolation ?? "inline",
    concurrency,
    maxRetries: options.maxRetries ?? 0,
    queues: options.queues ?? null,
    pollInterval: options.pollInterval ?? 1,
    heartbeatInterval: options.heartbeatInterval ?? 5,
    staleAfter,
    sweepInterval: options.sweepInterval ?? (typeof staleAfter === "number" ? staleAfter / 2 : staleAfter),
    shutdownTimeout: options.shutdownTimeout ?? 30,
    cancelGrace: options.cancelGrace ?? 10,
    maxResultBytes: options.maxResultBytes as number,
    retryBackoff: { base: options.retryBackoff?.base ?? 1, max: options.retryBackoff?.max ?? 3600 },
    logger: resolveLogger(options.logger),
    workerId: options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
    ...connectionLayout(options.poolSize, options.maxConnections),
    pgbouncer: resolvePgbouncer(options.pgbouncer),
    prefetch: options.prefetch ?? (typeof concurrency === "number" ? Math.max(1024, concurrency) : 1024),
    maxTasks: options.maxTasks ?? null,
    schedules: options.schedules,
    metrics: resolveMetricsOptions(options.metrics),
  };
  return validateWorkerConfig(config);
}

function validateWorkerConfig(c: WorkerConfig): WorkerConfig {
  validateIsolation(c.isolation);
  validateInteger("concurrency", c.concurrency, 1, 10_000);
  validateInteger("maxRetries", c.maxRetries, 0, 1_000_000);
  if (c.queues !== null) {
    if (!Array.isArray(c.queues) || c.queues.length === 0)
      throw new InvalidOptionError("queues", "give at least one queue");
    c.queues = [...new Set(c.queues.map(validateQueueName))];
  }
  validateSeconds("pollInterval", c.pollInterval, 0.01);
  validateSeconds("heartbeatInterval", c.heartbeatInterval, 0.05);
  validateSeconds("staleAfter", c.staleAfter, 0.1);
  if (c.staleAfter < 2 * c.heartbeatInterval) {
    throw new InvalidOptionError(
      "staleAfter",
      `must be at least twice heartbeatInterval (${c.heartbeatInterval} s), or live tasks would be swept`,
    );
  }
  validateInteger("prefetch", c.prefetch, 0, 100_000);
  validateSeconds("sweepInterval", c.sweepInterval, 0.05);
  validateSeconds("shutdownTimeout", c.shutdownTimeout);
  validateSeconds("cancelGrace", c.cancelGrace);
  c.maxResultBytes = payloadLimit("maxResultBytes", c.maxResultBytes);
  validateSeconds("retryBackoff.base", c.retryBackoff.base);
  validateSeconds("retryBackoff.max", c.retryBackoff.max);
  if (typeof c.workerId !== "string" || c.workerId === "")
    throw new InvalidOptionError("workerId", "expected a non-empty string");
  validateInteger("poolSize", c.poolSize, 1, 1000);
  if (c.maxTasks !== null) validateInteger("maxTasks", c.maxTasks, 1, Number.MAX_SAFE_INTEGER);
  return c;
}

/**
 * How a worker spends its connections: from maxConnections when given (checked against poolSize if both are), else
 * poolSize (default 4) plus a claim connection and the heartbeat's.
 */
function connectionLayout(
  poolSize: number | undefined,
  maxConnections: number | undefined,
): Pick<WorkerConfig, "poolSize" | "maxConnections" | "claimConnection" | "heartbeatThread"> {
  if (maxConnections === undefined) {
    const pool = poolSize ?? 4;
    return {
      poolSize: pool,
      maxConnections: typeof pool === "number" ? pool + 2 : pool,
      claimConnection: true,
      heartbeatThread: true,
    };
  }
  const n = validateInteger("maxConnections", maxConnections, 1, 1000);
  const pool = Math.max(1, n - 2);
  if (poolSize !== undefined && poolSize !== pool) {
    throw new InvalidOptionError(
      "poolSize",
      `poolSize ${String(poolSize)} and maxConnections ${n} disagree: maxConnections ${n} gives a pool of ${pool}; ` +
        "give one of the two",
    );
  }
  return { poolSize: pool, maxConnections: n, claimConnection: n >= 3, heartbeatThread: n >= 2 };
}

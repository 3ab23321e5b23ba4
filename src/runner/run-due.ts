import { performance } from "node:perf_hooks";
import { clientInternals, type SkiplockClient } from "../client.js";
import { validateInteger, validateQueueName, validateSeconds } from "../config.js";
import { isMovedRowError } from "../db/moved-rows.js";
import { InvalidOptionError, NoHandlerError, TaskNotFoundError, TaskStateError } from "../errors.js";
import type { Logger } from "../logger.js";
import { assertKnownKeys } from "../options.js";
import { claimTasks } from "../sql/claim.js";
import { claimTaskById } from "../sql/claim-by-id.js";
import { readTaskState } from "../sql/admin-state.js";
import type { Backoff } from "../sql/finish.js";
import { sweepStaleTasks, type SweptTask } from "../sql/sweep.js";
import { validateIsolation, validateTaskId, type Isolation } from "../task.js";
import { nobodyListens, noSignal, type Listening, type Signal } from "../worker/events.js";
import { buildRegistry, loadHandlers, queuesOf, type Registered, type TaskMap } from "../worker/registry.js";
import { tasksModuleUrl } from "../worker/tasks-module.js";
import type { ThreadPool } from "../worker/thread-pool.js";
import { Batch, type TaskRun } from "./batch.js";

export type { TaskRun } from "./batch.js";

/** How trigger calls run their tasks: the settings a worker has for the same things, with a worker's defaults. */
export interface RunnerSettings {
  /** Retries for tasks enqueued without `maxRetries` (a worker's `--retry`); default 0. */
  maxRetries?: number;
  /** Seconds between heartbeats of the tasks a call runs; default 5. */
  heartbeatInterval?: number;
  /**
   * Seconds without a heartbeat after which a running task counts as lost; default 30. Use the workers' value: a
   * `run` call sweeps with it first.
   */
  staleAfter?: number;
  /** Seconds a cancelled handler may take to settle before it is abandoned; default 10. */
  cancelGrace?: number;
  /** The default retry backoff: base * 2^retryCount seconds, capped at max, with jitter; default { base: 1, max: 3600 }. */
  retryBackoff?: Partial<Backoff>;
  /** Largest result stored, in bytes of UTF-8 JSON; default 32 MiB. */
  maxResultBytes?: number;
  /** "inline" (default) or "thread" (needs `tasksModule`), as a worker's `isolation`. */
  isolation?: Isolation;
}

const SETTING_KEYS = [
  "maxRetries",
  "heartbeatInterval",
  "staleAfter",
  "cancelGrace",
  "retryBackoff",
  "maxResultBytes",
  "isolation",
] as const satisfies readonly (keyof RunnerSettings)[];

export interface TaskRunnerOptions {
  client: SkiplockClient;
  /** The handlers, as `new Worker({ tasks })` takes them. */
  tasks?: TaskMap;
  /** A module exporting them (as `--tasks`), resolved from the working directory; needed for thread isolation. */
  tasksModule?: string;
  settings?: RunnerSettings;
  logger: Logger;
  /** Where the worker events of the tasks run go, and whether anyone listens to one (nothing is built otherwise). */
  signal?: Signal;
  listening?: Listening;
}

/** Longest time budget a `run` call may be given, in seconds. */
export const MAX_BUDGET_SECONDS = 900;
export const DEFAULT_BUDGET_SECONDS = 10;
/** Most tasks one `run` call claims. */
export const MAX_TASKS_PER_CALL = 10_000;
/** Most tasks one `run` call runs at once. */
export const MAX_CALL_CONCURRENCY = 64;

export interface RunDueOptions {
  /** Most tasks to claim; default 1. */
  max?: number;
  /** Seconds after which no more tasks are claimed (running ones finish); default 10, at most 900. */
  budget?: number;
  /** Queues to claim from; default "default" plus every queue a registered definition names, as a worker. */
  queues?: readonly string[];
  /** Tasks run at once; default 1. */
  concurrency?: number;
}

export interface RunDueResult {
  /** The worker id the call's leases were taken under. */
  workerId: string;
  tasks: TaskRun[];
  /** Lost workers' tasks the call's sweep took back first (requeued, failed or cancelled). */
  swept: { id: string; name: string; queue: string; status: SweptTask["status"] }[];
  /** Why it stopped claiming: `max` tasks claimed, the `budget` spent, or nothing left due (`idle`). */
  stoppedBy: "max" | "budget" | "idle";
  /** Seconds the call took. */
  seconds: number;
}

export interface TaskRunner {
  /** The queues a `run` call claims from unless told otherwise. */
  defaultQueues(): Promise<string[]>;
  /**
   * Sweeps lost workers' tasks, then claims and runs due tasks, up to `max` or until `budget` seconds passed, and
   * returns how each ended once every outcome is written.
   */
  runDue(options?: RunDueOptions): Promise<RunDueResult>;
  /**
   * Claims task `id` if it is PENDING (due or not) and runs it. TaskNotFoundError when there is no such task,
   * TaskStateError when it is not PENDING (or changed while being claimed), NoHandlerError when its name has no
   * handler here, InvalidOptionError when it is not on one of `queues` (default: the queues `runDue` claims from).
   */
  execute(id: string, options?: { queues?: readonly string[] }): Promise<RunDueResult>;
  /** Ends the threads of thread-isolated handlers (the client is the caller's). */
  close(): Promise<void>;
}

interface Checked {
  maxRetries: number;
  heartbeatInterval: number;
  staleAfter: number;
  cancelGrace: number;
  retryBackoff: Backoff;
  maxResultBytes: number | undefined;
  isolation: Isolation;
}

/** Every default filled in, then every value checked, naming the wrong one. */
function checkSettings(s: RunnerSettings = {}): Checked {
  assertKnownKeys("createDashboard runOptions", s, SETTING_KEYS);
  const c: Checked = {
    maxRetries: validateInteger("maxRetries", s.maxRetries ?? 0, 0, 1_000_000),
    heartbeatInterval: validateSeconds("heartbeatInterval", s.heartbeatInterval ?? 5, 0.05),
    staleAfter: validateSeconds("staleAfter", s.staleAfter ?? 30, 0.1),
    cancelGrace: validateSeconds("cancelGrace", s.cancelGrace ?? 10),
    retryBackoff: {
      base: validateSeconds("retryBackoff.base", s.retryBackoff?.base ?? 1),
      max: validateSeconds("retryBackoff.max", s.retryBackoff?.max ?? 3600),
    },
    maxResultBytes: s.maxResultBytes,
    isolation: validateIsolation(s.isolation) ?? "inline",
  };
  if (c.staleAfter < 2 * c.heartbeatInterval) {
    throw new InvalidOptionError(
      "staleAfter",
      `must be at least twice heartbeatInterval (${c.heartbeatInterval} s), or live tasks would be swept`,
    );
  }
  return c;
}

/** Queue names as given (validated, duplicates dropped), or undefined. */
export function checkQueues(queues: readonly string[] | undefined): string[] | undefined {
  if (queues === undefined) return undefined;
  if (!Array.isArray(queues) || queues.length === 0) throw new InvalidOptionError("queues", "give at least one queue");
  return [...new Set(queues.map(validateQueueName))];
}

/**
 * A runner of due tasks for hosts with no long-running worker (the dashboard's `api/run`, `api/run-one` and
 * `api/execute/:id`). Each call is a short-lived worker of its own (see batch.ts): the same claim, leases,
 * heartbeats, retry policy, timeouts, outcome writes, events and progress as `new Worker({ tasks })`, and like a
 * worker it fails a claimed task whose name has no handler here (UnknownTaskError) and never loads code named by a
 * row. The handlers load on the first call.
 */
export function createTaskRunner(options: TaskRunnerOptions): TaskRunner {
  const { client, logger } = options;
  if (!options.tasks && !options.tasksModule) {
    throw new InvalidOptionError("tasks", "a runner needs the handlers it runs: { tasks: { name: fn } }");
  }
  const settings = checkSettings(options.settings);
  // Checked now, so a bad map fails where it is given rather than at the first call.
  const given = options.tasks ? buildRegistry(options.tasks) : new Map<string, Registered>();
  const moduleUrl = options.tasksModule ? tasksModuleUrl(options.tasksModule) : null;
  const { config, store, notifier } = clientInternals(client);
  const signal = options.signal ?? noSignal;
  const listening = options.listening ?? nobodyListens;
  let loaded: Promise<{ registry: Map<string, Registered>; threads: ThreadPool | null }> | null = null;
  const handlers = () => (loaded ??= loadHandlers(given, moduleUrl, settings.isolation));

  const batch = async (concurrency: number) => {
    const { registry, threads } = await handlers();
    return new Batch(
      {
        store,
        notifier,
        databaseUrl: config.databaseUrl,
        logger,
        registry,
        threads,
        ...settings,
        signal,
        listening,
      },
      concurrency,
    );
  };

  /** One sweep of lost workers' tasks, in batches, as a worker's sweeper runs it (without the cluster lock). */
  const sweep = async (): Promise<SweptTask[]> => {
    const all: SweptTask[] = [];
    for (;;) {
      const swept = await sweepStaleTasks(store.hotQueries, store.tasks, settings.staleAfter);
      all.push(...swept);
      if (swept.length < 1000) break;
    }
    if (all.length > 0) {
      logger.info("swept lost workers' tasks", { tasks: all.length });
      if (listening("task:swept")) {
        for (const t of all) {
          const outcome =
            t.status === "PENDING"
              ? t.charged
                ? "requeued"
                : "handed-back"
              : t.status === "FAILED"
                ? "failed"
                : "cancelled";
          signal("task:swept", {
            id: t.id,
            name: t.name,
            queue: t.queue,
            attempt: t.attempt,
            outcome,
            workerId: t.worker_id,
          });
        }
      }
    }
    return all;
  };

  const result = (b: Batch, runs: TaskRun[], swept: SweptTask[], stoppedBy: RunDueResult["stoppedBy"], t0: number) => ({
    workerId: b.workerId,
    tasks: runs,
    swept: swept.map((t) => ({ id: t.id, name: t.name, queue: t.queue, status: t.status })),
    stoppedBy,
    seconds: (performance.now() - t0) / 1000,
  });

  return {
    async defaultQueues() {
      return queuesOf((await handlers()).registry);
    },

    async runDue(o = {}) {
      const t0 = performance.now();
      const max = validateInteger("max", o.max ?? 1, 1, MAX_TASKS_PER_CALL);
      const budget = validateSeconds("budget", o.budget ?? DEFAULT_BUDGET_SECONDS, 0, MAX_BUDGET_SECONDS);
      const concurrency = validateInteger("concurrency", o.concurrency ?? 1, 1, MAX_CALL_CONCURRENCY);
      const queues = checkQueues(o.queues) ?? (await this.defaultQueues());
      const b = await batch(concurrency);
      const swept = await sweep();
      const deadline = t0 + budget * 1000;
      let claimed = 0;
      let stoppedBy: RunDueResult["stoppedBy"] = "idle";
      let failure: unknown = null;
      try {
        for (;;) {
          if (claimed >= max) {
            stoppedBy = "max";
            break;
          }
          if (performance.now() >= deadline) {
            stoppedBy = "budget";
            break;
          }
          if (b.free === 0) {
            await b.slotFreed();
            continue;
          }
          const rows = await claimTasks(store.hotQueries, store.tasks, {
            queues,
            limit: Math.min(b.free, max - claimed),
            workerId: b.workerId,
            defaultMaxRetries: settings.maxRetries,
          });
          if (rows.length === 0) {
            if (b.running === 0) break;
            // A retry that a running task's outcome makes due at once is claimable once that outcome is written.
            await b.slotFreed();
            await b.outcomesWritten();
            continue;
          }
          claimed += rows.length;
          b.begin(rows);
        }
      } catch (err) {
        // What was claimed still runs to its outcome; then the caller hears of the failure.
        failure = err;
      }
      const runs = await b.finish();
      if (failure !== null) throw failure;
      return result(b, runs, swept, stoppedBy, t0);
    },

    async execute(id, o = {}) {
      const t0 = performance.now();
      const taskId = validateTaskId(id);
      const queues = checkQueues(o.queues) ?? (await this.defaultQueues());
      // A task this process has no handler for is left to a worker that has one (a name never changes).
      const before = await readTaskState(store.hotQueries, store.tasks, taskId);
      if (before === null) throw new TaskNotFoundError(taskId);
      if (before.status !== "PENDING") throw new TaskStateError(taskId, "execute", before.status, ["PENDING"]);
      if (!(await handlers()).registry.has(before.name)) throw new NoHandlerError(taskId, before.name);
      if (!queues.includes(before.queue)) {
        throw new InvalidOptionError("queue", `task ${taskId} is on queue ${before.queue}, not ${queues.join(", ")}`);
      }
      const b = await batch(1);
      let row: Awaited<ReturnType<typeof claimTaskById>> = null;
      try {
        row = await claimTaskById(store.hotQueries, store.tasks, {
          id: taskId,
          workerId: b.workerId,
          defaultMaxRetries: settings.maxRetries,
          queues,
        });
      } catch (err) {
        // A cancel (or another change) moved the row to tasks_done under the claim each time `run` tried it: the
        // state read below says where it went, and the call answers 409 rather than a database error.
        if (!isMovedRowError(err)) {
          await b.finish();
          throw err;
        }
      }
      if (row === null) {
        await b.finish();
        const state = await readTaskState(store.hotQueries, store.tasks, taskId);
        if (state === null) throw new TaskNotFoundError(taskId);
        if (state.status !== "PENDING") throw new TaskStateError(taskId, "execute", state.status, ["PENDING"]);
        throw new TaskStateError(
          taskId,
          "execute",
          state.status,
          ["PENDING"],
          "it changed while being claimed: try again",
        );
      }
      b.begin([row]);
      return result(b, await b.finish(), [], "max", t0);
    },

    async close() {
      const current = loaded;
      loaded = null;
      const threads = current ? (await current.catch(() => null))?.threads : null;
      await threads?.close();
    },
  };
}

import { inspect } from "node:util";
import {
  redactedConnection,
  resolveConnection,
  validateDays,
  validateInteger,
  validateSeconds,
  type ConnectionConfig,
  type ConnectionOptions,
} from "./config.js";
import { migrate, type MigrateResult } from "./db/migrate.js";
import { Store } from "./db/store.js";
import { InvalidOptionError, TaskNotFoundError, TaskStateError, UniqueKeyConflictError } from "./errors.js";
import { consoleLogger, type Logger } from "./logger.js";
import { createNotifier, publishWakes, type Notifier } from "./notify/index.js";
import { countFinishedTasks, countLiveTasks, countUnsuccessfulTasks, finishedStatisticsOf } from "./sql/admin-count.js";
import { deleteFinishedTask } from "./sql/admin-delete.js";
import { listTaskRows } from "./sql/admin-list.js";
import { retryFinishedTask } from "./sql/admin-retry.js";
import { runPendingTaskNow } from "./sql/admin-run-now.js";
import { readTaskState, type TaskState } from "./sql/admin-state.js";
import {
  exactLimitOf,
  listFilter,
  taskCounts,
  type CountTasksOptions,
  type ListTasksOptions,
  type TaskCounts,
  type TaskPage,
} from "./admin.js";
import { requestCancel } from "./sql/cancel.js";
import { insertTasks } from "./sql/insert.js";
import { purgeTasks } from "./sql/purge.js";
import { payloadLimit } from "./json.js";
import { assertKnownKeys } from "./options.js";
import { Waiters } from "./waiters.js";
import {
  FINAL_STATUSES,
  prepareTask,
  TASK_OPTION_KEYS,
  rowToTask,
  validateTaskId,
  type JsonValue,
  type Task,
  type TaskInsert,
  type TaskOptions,
  type TaskProgress,
  type TaskRow,
  type TaskSpec,
  type TaskStatus,
} from "./task.js";
import { isTaskClient, type CreateTasksOptions, type TaskClient } from "./task-client.js";

/** What retryTask moves back to PENDING. */
const RETRYABLE: readonly TaskStatus[] = ["FAILED", "CANCELLED"];
/** Postgres' unique_violation. */
const UNIQUE_VIOLATION = "23505";

export interface ClientOptions extends ConnectionOptions {
  logger?: Logger;
  /**
   * Seconds between re-reads of the rows `waitForCompletion` waits on while Redis is unavailable; default 1. While
   * Redis is up, a "finished" message triggers the re-read instead (see README, "Enqueueing and waiting").
   */
  pollInterval?: number;
  /** Most Postgres connections this client opens; default 10. */
  poolSize?: number;
  /** Let the process exit while this client's connections are idle (the module-level default client does). */
  unref?: boolean;
  /** Largest args of one task, in bytes of UTF-8 JSON; larger are refused with PayloadTooLargeError. Default 32 MiB. */
  maxArgsBytes?: number;
}

const CLIENT_OPTION_KEYS = [
  "databaseUrl",
  "redisUrl",
  "schema",
  "logger",
  "pollInterval",
  "poolSize",
  "unref",
  "maxArgsBytes",
] as const satisfies readonly (keyof ClientOptions)[];

export interface WaitOptions {
  /** Seconds to wait; resolves `null` after them. Default: no limit. */
  timeout?: number;
  /** Seconds between re-reads of the row while Redis is unavailable; default the client's `pollInterval`. */
  pollInterval?: number;
  /**
   * Called with the task's progress: its current progress on the first read, then each change (through Redis within
   * milliseconds; without it, as the waiter's re-reads see them). A listener that throws is logged and ignored.
   */
  onProgress?: (progress: TaskProgress) => void;
}

/** @internal What tests inside this package reach through a client (see clientInternals). */
export interface ClientInternals {
  readonly config: ConnectionConfig;
  readonly store: Store;
  readonly notifier: Notifier;
}

let internalsOf: (client: SkiplockClient) => ClientInternals;

/**
 * The producer side: creates tasks, reads them, waits for them. Holds a Postgres pool and, with a Redis URL, the
 * doorbell. Module-level `createTask` and friends use one default instance configured from the environment.
 * Nothing connects before the first call that needs it: a client can be made at import time, and one that is only
 * made and closed opens no connection.
 */
export class SkiplockClient implements TaskClient {
  readonly #config: ConnectionConfig;
  readonly #store: Store;
  readonly #notifier: Notifier;
  readonly logger: Logger;
  readonly #pollInterval: number;
  readonly #waiters: Waiters;
  readonly #maxArgsBytes: number;

  constructor(options: ClientOptions = {}) {
    assertKnownKeys("new SkiplockClient", options, CLIENT_OPTION_KEYS);
    this.#config = resolveConnection(options);
    this.#maxArgsBytes = payloadLimit("maxArgsBytes", options.maxArgsBytes);
    this.logger = options.logger ?? consoleLogger();
    this.#pollInterval = validateSeconds("pollInterval", options.pollInterval ?? 1, 0.01);
    this.#store = new Store({
      databaseUrl: this.#config.databaseUrl,
      schema: this.#config.schema,
      poolSize: options.poolSize ?? 10,
      applicationName: "skiplock client",
      allowExitOnIdle: options.unref ?? false,
    });
    this.#notifier = createNotifier({
      redisUrl: this.#config.redisUrl,
      schema: this.#config.schema,
      logger: this.logger,
      unref: options.unref ?? false,
    });
    this.#waiters = new Waiters(this.#store.pool, this.#store.tasks, this.#notifier, this.logger);
  }

  static {
    internalsOf = (client) => ({ config: client.#config, store: client.#store, notifier: client.#notifier });
  }

  /** Applies pending migrations to this client's schema. */
  migrate(): Promise<MigrateResult> {
    return migrate({ databaseUrl: this.#config.databaseUrl, schema: this.#config.schema });
  }

  /** Enqueues one task. `args` are the handler's parameters and must be JSON; they are checked before any write. */
  async createTask<R = JsonValue>(
    name: string,
    args: readonly unknown[] = [],
    options: TaskOptions = {},
  ): Promise<Task<R>> {
    assertKnownKeys("createTask", options, TASK_OPTION_KEYS);
    const [task] = await this.#insert([prepareTask({ ...options, name, args }, "args", this.#maxArgsBytes)]);
    return task as Task<R>;
  }

  /** Enqueues many tasks in one round trip; returns them in the order given. Nothing is written if any is invalid. */
  async createTasks(specs: readonly TaskSpec[]): Promise<Task[]> {
    if (!Array.isArray(specs)) throw new TypeError("createTasks expects an array of task specs");
    const prepared = specs.map((s, i) => prepareTask(s, `specs[${i}].args`, this.#maxArgsBytes));
    if (prepared.length === 0) return [];
    return this.#insert(prepared);
  }

  async #insert(prepared: TaskInsert[]): Promise<Task[]> {
    // The doorbell connects while the insert runs, so the first wake-up need not wait for it.
    void this.#notifier.start();
    const tasks = await insertTasks(this.#store.pool, this.#store.tasks, prepared);
    publishWakes(this.#notifier, tasks); // the insert has committed (autocommit)
    return tasks;
  }

  /** The task, or null when no task has that id. */
  async getTask<R = JsonValue>(id: string): Promise<Task<R> | null> {
    const taskId = validateTaskId(id);
    const row = await this.#store.db.selectFrom("tasks").selectAll().where("id", "=", taskId).executeTakeFirst();
    return row ? rowToTask<R>(row as unknown as TaskRow) : null;
  }

  /**
   * Resolves with the task once it is COMPLETED, FAILED or CANCELLED, or with null when `timeout` seconds pass
   * first. All the waiters of a client share one loop that re-reads their rows in batches: when a Redis "finished"
   * message names a task, when the subscriber reconnects, every `pollInterval` seconds while Redis is unavailable,
   * and on a slow safety-net timer otherwise. Throws TaskNotFoundError for an unknown id.
   */
  waitForCompletion<R = JsonValue>(id: string, options: WaitOptions = {}): Promise<Task<R> | null> {
    let taskId: string, timeoutMs: number | undefined, pollMs: number;
    try {
      taskId = validateTaskId(id);
      timeoutMs = options.timeout === undefined ? undefined : validateSeconds("timeout", options.timeout) * 1000;
      pollMs = validateSeconds("pollInterval", options.pollInterval ?? this.#pollInterval, 0.01) * 1000;
      if (options.onProgress !== undefined && typeof options.onProgress !== "function") {
        throw new InvalidOptionError("onProgress", "expected a function");
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#waiters.wait<R>(taskId, pollMs, timeoutMs, options.onProgress);
  }

  /**
   * Calls `listener` with task `id`'s progress: its current progress once read, then each change the handler
   * records (`taskContext().progress`), through Redis within milliseconds, and without Redis as the row is re-read
   * every `pollInterval`. Stops by itself once the task is final (or was never a task). Returns the unsubscribe
   * function.
   */
  onProgress(id: string, listener: (progress: TaskProgress) => void): () => void {
    const taskId = validateTaskId(id);
    if (typeof listener !== "function") throw new InvalidOptionError("listener", "expected a function");
    return this.#waiters.watch(taskId, listener, this.#pollInterval * 1000);
  }

  /**
   * Cancels a task and returns it as it stands. A PENDING task becomes CANCELLED at once and will not run. A running
   * (PROGRESS) task gets `cancelRequested`: the worker holding it hears it (through Redis within milliseconds, without
   * it at its next heartbeat), fires the handler's signal with a TaskCancelledError, and writes CANCELLED when the
   * handler settles (COMPLETED if it returns successfully anyway), or after its `cancelGrace` if it ignores the
   * signal; `waitForCompletion` tells which. A finished task is returned unchanged. Throws TaskNotFoundError for an
   * unknown id.
   */
  async cancelTask(id: string): Promise<Task> {
    const taskId = validateTaskId(id);
    // The doorbell connects while the request runs, so the worker can be told at once.
    void this.#notifier.start();
    const row = await requestCancel(this.#store.pool, this.#store.tasks, taskId);
    if (row) {
      const task = rowToTask(row);
      if (task.status === "CANCELLED") {
        this.#notifier.publishFinished([taskId]);
        this.#waiters.settle(task); // this client's own waiters need not wait for the message
      } else {
        this.#notifier.publishCancel(taskId, task.attempt);
      }
      return task;
    }
    const task = await this.getTask(taskId);
    if (!task) throw new TaskNotFoundError(taskId);
    return task;
  }

  /**
   * Deletes finished tasks (COMPLETED, FAILED, CANCELLED, or the `statuses` given) that finished more than
   * `olderThanDays` days ago, in short batches. With `dryRun`, only counts them. Never touches PENDING or PROGRESS.
   */
  async purgeTasks(options: PurgeTasksOptions): Promise<{ deleted: number; scanned: number; dryRun: boolean }> {
    const days = validateDays("olderThanDays", options.olderThanDays);
    const statuses = options.statuses ?? [...FINAL_STATUSES];
    if (!Array.isArray(statuses) || statuses.length === 0 || statuses.some((st) => !FINAL_STATUSES.has(st))) {
      throw new InvalidOptionError("statuses", "choose among COMPLETED, FAILED and CANCELLED");
    }
    const batchSize = validateInteger("batchSize", options.batchSize ?? 10_000, 1, 1_000_000);
    const dryRun = options.dryRun ?? false;
    const r = await purgeTasks(this.#store.pool, this.#store.tasks, {
      statuses,
      olderThan: days * 86_400,
      batchSize,
      dryRun,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    return { deleted: r.matched, scanned: r.scanned, dryRun };
  }

  /**
   * Moves a FAILED or CANCELLED task back to PENDING, due now, and returns it. Its history stays: `attempt`, `error`,
   * `errors`. A FAILED task's `retryCount` counts this retry, so a task whose retries were spent gets one more
   * attempt. Throws TaskNotFoundError for an unknown id, TaskStateError when the task is in another state (nothing is
   * changed), and UniqueKeyConflictError when a newer live task holds its unique key.
   */
  async retryTask(id: string): Promise<Task> {
    const taskId = validateTaskId(id);
    for (let tries = 1; ; tries++) {
      let row: TaskRow | null = null;
      try {
        row = await retryFinishedTask(this.#store.pool, this.#store.tasks, taskId);
      } catch (err) {
        // A concurrent enqueue took the key between the check and the move: read who holds it.
        if ((err as { code?: string }).code !== UNIQUE_VIOLATION || tries >= 3) throw err;
      }
      if (row) {
        const task = rowToTask(row);
        this.#ringFor(task);
        return task;
      }
      const state = await this.#stateOf(taskId);
      if (!RETRYABLE.includes(state.status)) {
        throw new TaskStateError(taskId, "retry", state.status, RETRYABLE);
      }
      if (state.holder !== null && state.unique_key !== null) {
        throw new UniqueKeyConflictError(taskId, state.unique_key, state.holder);
      }
      // Retryable and free again by now (the holder finished, or a retry raced this one back): try once more.
      if (tries >= 3) throw new TaskStateError(taskId, "retry", state.status, RETRYABLE, "it kept changing");
    }
  }

  /**
   * Makes a PENDING task due now (a task already due keeps its place) and returns it. Throws TaskNotFoundError for an
   * unknown id and TaskStateError for a task that is not PENDING.
   */
  async runTaskNow(id: string): Promise<Task> {
    const taskId = validateTaskId(id);
    const row = await runPendingTaskNow(this.#store.pool, this.#store.tasks, taskId);
    if (!row) {
      const state = await this.#stateOf(taskId);
      throw new TaskStateError(taskId, "run now", state.status, ["PENDING"]);
    }
    const { was_future: wasFuture, ...taskRow } = row;
    const task = rowToTask(taskRow);
    if (wasFuture) this.#ringFor(task);
    return task;
  }

  /**
   * Deletes a finished task (COMPLETED, FAILED or CANCELLED) and returns it as it was. Throws TaskNotFoundError for
   * an unknown id and TaskStateError for a PENDING or PROGRESS task: cancel it first.
   */
  async deleteTask(id: string): Promise<Task> {
    const taskId = validateTaskId(id);
    const row = await deleteFinishedTask(this.#store.pool, this.#store.tasks, taskId);
    if (row) return rowToTask(row);
    const state = await this.#stateOf(taskId);
    throw new TaskStateError(taskId, "delete", state.status, [...FINAL_STATUSES], "cancel it first");
  }

  /**
   * A page of tasks, newest first, optionally only those of some statuses, a queue, a name or with some meta. Pass
   * the page's `next` as `after` for the following page (keyset paging: every page costs what the first does).
   */
  async listTasks(options: ListTasksOptions = {}): Promise<TaskPage> {
    const { pageSize, ...filter } = listFilter(options);
    const rows = await listTaskRows(this.#store.pool, this.#store.tasks, filter);
    const tasks = rows.slice(0, pageSize).map((r) => rowToTask(r));
    return { tasks, next: rows.length > pageSize ? tasks[pageSize - 1]!.id : null };
  }

  /**
   * Tasks per queue and status. PENDING and PROGRESS are always exact; finished tasks are counted exactly while
   * there are at most `exactLimit` (default 50,000), beyond which COMPLETED counts are the planner's estimates
   * (`exact: false`, `estimated` names them). Cheap whatever the table's size.
   */
  async countTasks(options: CountTasksOptions = {}): Promise<TaskCounts> {
    const cap = exactLimitOf(options);
    const { pool, tasks, schema } = this.#store;
    const [live, stats] = await Promise.all([countLiveTasks(pool, tasks), finishedStatisticsOf(pool, tasks, schema)]);
    // Statistics that put the finished rows well past the cap spare reading `cap` rows only to learn that.
    if (!stats || stats.rows <= cap * 1.5) {
      const done = await countFinishedTasks(pool, tasks, cap);
      if (done) return taskCounts([...live, ...done], null, []);
      // Many rows and no statistics yet (never analyzed): count them all this once rather than guess.
      if (!stats) return taskCounts([...live, ...(await countFinishedTasks(pool, tasks, null))!], null, []);
    }
    const unsuccessful = await countUnsuccessfulTasks(pool, tasks, cap);
    if (unsuccessful) return taskCounts([...live, ...unsuccessful], stats, ["COMPLETED"]);
    return taskCounts(live, stats, ["COMPLETED", "FAILED", "CANCELLED"]);
  }

  /** Where task `id` stands, once a management call changed nothing; TaskNotFoundError when it is no task. */
  async #stateOf(id: string): Promise<TaskState> {
    const state = await readTaskState(this.#store.pool, this.#store.tasks, id);
    if (!state) throw new TaskNotFoundError(id);
    return state;
  }

  /** Rings the doorbell for a task just made due (its move has committed). */
  #ringFor(task: Task): void {
    void this.#notifier.start();
    publishWakes(this.#notifier, [{ queue: task.queue, runAt: task.runAt, createdAt: task.runAt }]);
  }

  /** Closes the connections; pending `waitForCompletion` calls reject with code CLIENT_CLOSED. */
  async close(): Promise<void> {
    this.#waiters.close();
    await Promise.all([this.#notifier.stop(), this.#store.close()]);
  }

  /** What a printed client shows: where it connects, its URLs redacted. */
  toJSON(): ReturnType<typeof redactedConnection> {
    return redactedConnection(this.#config);
  }

  [inspect.custom](_depth: number, options: object): string {
    return `SkiplockClient ${inspect(this.toJSON(), options)}`;
  }
}

/**
 * @internal A client's connection settings, store and notifier, for this package's tests and tools: not part of the
 * API (not exported by the package), and may change at any time.
 */
export function clientInternals(client: SkiplockClient): ClientInternals {
  return internalsOf(client);
}

export interface PurgeTasksOptions {
  /** Delete tasks that finished more than this many days ago (fractions allowed). */
  olderThanDays: number;
  /** Which final statuses to delete; default all three. */
  statuses?: ("COMPLETED" | "FAILED" | "CANCELLED")[];
  /** Rows read per step, each its own short transaction; default 10,000. */
  batchSize?: number;
  /** Count, delete nothing. */
  dryRun?: boolean;
  /** Called after each step with the running count and the finished rows read. */
  onProgress?: (matched: number, scanned: number) => void;
}

let defaultClient: SkiplockClient | null = null;
/** What setDefaultClient put in front of the default client (a test mode, usually), or null. */
let standIn: TaskClient | null = null;

/** The client configured from DATABASE_URL, REDIS_URL and SKIPLOCK_SCHEMA, made on first use. */
export function getDefaultClient(): SkiplockClient {
  defaultClient ??= new SkiplockClient({ unref: true });
  return defaultClient;
}

/**
 * Puts `client` behind the module-level functions (`createTask`, `createTasks`, `getTask`, `waitForCompletion`,
 * `cancelTask`) and every task handle given no client of its own: an ImmediateClient or a DummyClient in tests, or a
 * SkiplockClient of the app's own. `null` restores the client from the environment. Returns the client it replaces
 * (null for the one from the environment), to put it back.
 */
export function setDefaultClient(client: TaskClient | null): TaskClient | null {
  if (client !== null && !isTaskClient(client)) {
    throw new InvalidOptionError(
      "client",
      "setDefaultClient expects a client (SkiplockClient, ImmediateClient, DummyClient) or null",
    );
  }
  const previous = standIn;
  standIn = client;
  return previous;
}

/** The client the module-level functions and handles use now: setDefaultClient's, else the default one. */
export function currentClient(): TaskClient {
  return standIn ?? getDefaultClient();
}

/** Closes the default client's connections (a later call opens new ones). A client set by setDefaultClient stays. */
export async function closeDefaultClient(): Promise<void> {
  const c = defaultClient;
  defaultClient = null;
  await c?.close();
}

export function createTask<R = JsonValue>(
  name: string,
  args?: readonly unknown[],
  options?: TaskOptions,
): Promise<Task<R>> {
  return currentClient().createTask<R>(name, args, options);
}

export function createTasks(specs: readonly TaskSpec[], options?: CreateTasksOptions): Promise<Task[]> {
  return currentClient().createTasks(specs, options);
}

export function getTask<R = JsonValue>(id: string): Promise<Task<R> | null> {
  return currentClient().getTask<R>(id);
}

export function waitForCompletion<R = JsonValue>(id: string, options?: WaitOptions): Promise<Task<R> | null> {
  return currentClient().waitForCompletion<R>(id, options);
}

export function cancelTask(id: string): Promise<Task> {
  return currentClient().cancelTask(id);
}

// Managing tasks (see SkiplockClient.retryTask and the methods after it).

export function retryTask(id: string): Promise<Task> {
  return getDefaultClient().retryTask(id);
}

export function runTaskNow(id: string): Promise<Task> {
  return getDefaultClient().runTaskNow(id);
}

export function deleteTask(id: string): Promise<Task> {
  return getDefaultClient().deleteTask(id);
}

export function listTasks(options?: ListTasksOptions): Promise<TaskPage> {
  return getDefaultClient().listTasks(options);
}

export function countTasks(options?: CountTasksOptions): Promise<TaskCounts> {
  return getDefaultClient().countTasks(options);
}

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
import { quoteIdent, Store } from "./db/store.js";
import { InvalidOptionError, ScheduleNotFoundError, TaskNotFoundError } from "./errors.js";
import { consoleLogger, type Logger } from "./logger.js";
import { createNotifier, publishWakes, type Notifier } from "./notify/index.js";
import { cancelPendingTask } from "./sql/cancel.js";
import { insertTasks } from "./sql/insert.js";
import { purgeTasks } from "./sql/purge.js";
import * as schedules from "./sql/schedule-admin.js";
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
  type TaskRow,
  type TaskSpec,
} from "./task.js";
import { isTaskClient, type CreateTasksOptions, type TaskClient } from "./task-client.js";

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
    this.#waiters = new Waiters(this.#store.pool, this.#store.tasks, this.#notifier);
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
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#waiters.wait<R>(taskId, pollMs, timeoutMs);
  }

  /**
   * Cancels a PENDING task (it becomes CANCELLED and will not run) and returns it. A task that is already running
   * or finished is returned unchanged. Throws TaskNotFoundError for an unknown id.
   */
  async cancelTask(id: string): Promise<Task> {
    const taskId = validateTaskId(id);
    const row = await cancelPendingTask(this.#store.pool, this.#store.tasks, taskId);
    if (row) {
      this.#notifier.publishFinished([taskId]);
      const task = rowToTask(row);
      this.#waiters.settle(task); // this client's own waiters need not wait for the message
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

  /** The stored schedules (see Schedules), by name: definition, last and next tick, paused or removed. */
  listSchedules(): Promise<schedules.ScheduleInfo[]> {
    return schedules.listSchedules(this.#store.pool, quoteIdent(this.#store.schema));
  }

  /** Pauses a schedule: it enqueues nothing until resumed. Throws ScheduleNotFoundError for an unknown name. */
  async pauseSchedule(name: string): Promise<schedules.ScheduleInfo> {
    return found(
      name,
      await schedules.pauseSchedule(this.#store.pool, quoteIdent(this.#store.schema), scheduleName(name)),
    );
  }

  /** Resumes a paused schedule from its next tick; the ticks of the paused period are not backfilled. */
  async resumeSchedule(name: string): Promise<schedules.ScheduleInfo> {
    return found(
      name,
      await schedules.resumeSchedule(this.#store.pool, quoteIdent(this.#store.schema), scheduleName(name)),
    );
  }

  /** Enqueues the schedule's task once, now, outside its tick sequence, and returns the task. */
  async triggerSchedule(name: string): Promise<Task> {
    const row = await schedules.triggerSchedule(this.#store.pool, quoteIdent(this.#store.schema), scheduleName(name));
    const task = rowToTask(found(name, row));
    void this.#notifier.start();
    publishWakes(this.#notifier, [task]);
    return task;
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

function scheduleName(name: unknown): string {
  if (typeof name !== "string") throw new InvalidOptionError("name", "expected a schedule name (a string)");
  return name;
}

/** `value`, or a ScheduleNotFoundError when there is no schedule `name`. */
function found<T>(name: string, value: T | null): T {
  if (value === null) throw new ScheduleNotFoundError(name);
  return value;
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

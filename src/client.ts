import { EventEmitter } from "node:events";
import { inspect } from "node:util";
import type { Kysely, Transaction } from "kysely";
import { CommitWatcher } from "./commit-watcher.js";
import {
  redactedConnection,
  resolveConnection,
  resolveQueueAllowList,
  validateDays,
  validateInteger,
  validateSeconds,
  type ConnectionConfig,
  type ConnectionOptions,
} from "./config.js";
import { migrate, type MigrateResult } from "./db/migrate.js";
import { quoteIdent, Store } from "./db/store.js";
import {
  InvalidOptionError,
  QueueNotAllowedError,
  ScheduleNotFoundError,
  TaskNotFoundError,
  TaskStateError,
  UniqueKeyConflictError,
} from "./errors.js";
import { InsertBatcher } from "./insert-batcher.js";
import { resolveLogger, type Logger } from "./logger.js";
import { createNotifier, publishWakes, type Notifier } from "./notify/index.js";
import { deleteFinishedTask } from "./sql/admin-delete.js";
import { retryFinishedTask } from "./sql/admin-retry.js";
import { runPendingTaskNow } from "./sql/admin-run-now.js";
import { readTaskState, type TaskState } from "./sql/admin-state.js";
import {
  countTasksIn,
  exactLimitOf,
  listFilter,
  readTaskPage,
  type CountTasksOptions,
  type ListTasksOptions,
  type TaskCounts,
  type TaskPage,
} from "./admin.js";
import { requestCancel } from "./sql/cancel.js";
import { writeTasks, type Inserted } from "./sql/insert.js";
import { purgeTasks } from "./sql/purge.js";
import * as schedules from "./sql/schedule-admin.js";
import { listWorkerRows, type WorkerInfo } from "./sql/workers.js";
import { payloadLimit } from "./json.js";
import { assertKnownKeys } from "./options.js";
import { Waiters } from "./waiters.js";
import {
  FINAL_STATUSES,
  prepareCreateTask,
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
import { transactionQueryable } from "./transaction.js";
import { resolvePgbouncer } from "./db/pgbouncer.js";
import { checkExpectation, unexpectedState, type TaskActionOptions } from "./task-expectation.js";

export interface ClientOptions extends ConnectionOptions {
  logger?: Logger;
  /**
   * Seconds between re-reads of the rows `waitForCompletion` waits on while Redis is unavailable; default 1. While
   * Redis is up, a "finished" message triggers the re-read instead (see README, "Enqueueing and waiting").
   */
  pollInterval?: number;
  /** Most Postgres connections this client opens; default 10. */
  poolSize?: number;
  /**
   * Connect through PgBouncer in transaction pooling mode (`pool_mode = transaction`): unnamed statements, no session
   * settings. Default SKIPLOCK_PGBOUNCER (`1` or `true`), else false. Harmless on a direct connection.
   */
  pgbouncer?: boolean;
  /** Let the process exit while this client's connections are idle (the module-level default client does). */
  unref?: boolean;
  /** Largest args of one task, in bytes of UTF-8 JSON; larger are refused with PayloadTooLargeError. Default 32 MiB. */
  maxArgsBytes?: number;
  /**
   * The queues this client may enqueue to; a task for any other is refused with QueueNotAllowedError before anything
   * is written. Default: SKIPLOCK_QUEUES (comma-separated); absent or empty allows any queue.
   */
  queues?: readonly string[];
}

/** What a client emits (`client.on("task:enqueued", ({ task }) => …)`). */
export interface ClientEvents {
  /**
   * A task was created, or a PENDING one updated by uniqueMode "replace" (`replaced`), and its write has committed:
   * at once for the client's own writes and `client.transaction`; for a caller's transaction, when the client sees
   * that transaction commit (never for one rolled back). Not emitted when a "keep" returns an existing task.
   * Listeners run before createTask returns; one that throws is logged and does not fail the enqueue.
   */
  "task:enqueued": [{ task: Task; replaced: boolean }];
}

/** The argument of `client.transaction(fn)`: the open transaction, for the caller's own queries and for enqueueing. */
export interface ClientTransaction {
  /** kysely on the transaction, for the caller's own tables (untyped: `tx.db.insertInto("orders")…`). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the caller's tables are not skiplock's to type.
  readonly db: Transaction<any>;
  /** createTask in this transaction: the task exists, and can run, once the transaction commits. */
  createTask<R = JsonValue>(
    name: string,
    args?: readonly unknown[],
    options?: TransactionTaskOptions,
  ): Promise<Task<R>>;
  /** createTasks in this transaction. */
  createTasks(specs: readonly TaskSpec[]): Promise<Task[]>;
}

/** createTask's options inside `client.transaction` (the transaction is already given). */
export type TransactionTaskOptions = Omit<TaskOptions, "transaction">;

/**
 * Inserts running at once before further createTask calls queue for a shared one (see insert-batcher.ts). 64
 * concurrent callers in one process: 780–2,400 tasks/s with every call its own insert, 4,200–4,600 with one insert in
 * flight, 3,900–8,600 with two, 3,900–6,600 with four (see docs/architecture.md).
 */
const SHARED_INSERTS_IN_FLIGHT = 2;

const CLIENT_OPTION_KEYS = [
  "databaseUrl",
  "redisUrl",
  "redisTls",
  "schema",
  "logger",
  "pollInterval",
  "poolSize",
  "pgbouncer",
  "unref",
  "maxArgsBytes",
  "queues",
] as const satisfies readonly (keyof ClientOptions)[];
const TRANSACTION_TASK_OPTION_KEYS = TASK_OPTION_KEYS.filter((k) => k !== "transaction");

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
export class SkiplockClient extends EventEmitter<ClientEvents> implements TaskClient {
  readonly #config: ConnectionConfig;
  readonly #store: Store;
  readonly #notifier: Notifier;
  readonly logger: Logger;
  readonly #pollInterval: number;
  readonly #waiters: Waiters;
  readonly #maxArgsBytes: number;
  readonly #queues: ReadonlySet<string> | null;
  readonly #batcher: InsertBatcher;
  #watcher: CommitWatcher<Inserted> | null = null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- see ClientTransaction.db
  #userDb: Kysely<any> | null = null;

  constructor(options: ClientOptions = {}) {
    super();
    // EventEmitter's bookkeeping stays out of Object.keys and spreads, as the client's other internals do.
    for (const key of ["_events", "_eventsCount", "_maxListeners"]) {
      if (Object.prototype.hasOwnProperty.call(this, key)) Object.defineProperty(this, key, { enumerable: false });
    }
    assertKnownKeys("new SkiplockClient", options, CLIENT_OPTION_KEYS);
    this.#config = resolveConnection(options);
    this.#queues = resolveQueueAllowList(options.queues);
    this.#maxArgsBytes = payloadLimit("maxArgsBytes", options.maxArgsBytes);
    this.logger = resolveLogger(options.logger);
    this.#pollInterval = validateSeconds("pollInterval", options.pollInterval ?? 1, 0.01);
    this.#store = new Store({
      databaseUrl: this.#config.databaseUrl,
      schema: this.#config.schema,
      poolSize: options.poolSize ?? 10,
      applicationName: "skiplock client",
      pgbouncer: resolvePgbouncer(options.pgbouncer),
      allowExitOnIdle: options.unref ?? false,
    });
    this.#notifier = createNotifier({
      redisUrl: this.#config.redisUrl,
      databaseUrl: this.#config.databaseUrl,
      tls: this.#config.redisTls,
      schema: this.#config.schema,
      logger: this.logger,
      unref: options.unref ?? false,
    });
    this.#waiters = new Waiters(this.#store.pool, this.#store.tasks, this.#notifier, this.logger);
    this.#batcher = new InsertBatcher(async (specs) => (await this.#write(specs)).tasks, SHARED_INSERTS_IN_FLIGHT);
  }

  static {
    internalsOf = (client) => ({ config: client.#config, store: client.#store, notifier: client.#notifier });
  }

  /** Applies pending migrations to this client's schema. */
  migrate(): Promise<MigrateResult> {
    return migrate({ databaseUrl: this.#config.databaseUrl, schema: this.#config.schema });
  }

  /**
   * Enqueues one task. `args` are the handler's parameters and must be JSON; they are checked before any write.
   * Calls made while other inserts are running share the next insert (see insert-batcher.ts), except those with a
   * uniqueKey; a call with `transaction` writes in that transaction instead.
   */
  async createTask<R = JsonValue>(
    name: string,
    args: readonly unknown[] = [],
    options: TaskOptions = {},
  ): Promise<Task<R>> {
    const { spec, transaction } = prepareCreateTask(name, args, options, this.#maxArgsBytes);
    this.#assertQueueAllowed(spec.queue, "createTask");
    if (transaction !== undefined) return (await this.#writeIn(transaction, [spec], null))[0] as Task<R>;
    // A keyed insert may wait for another transaction that holds its key: it goes alone, holding up no other call.
    if (spec.uniqueKey !== null) return (await this.#write([spec])).tasks[0] as Task<R>;
    return (await this.#batcher.add(spec)) as Task<R>;
  }

  /**
   * Enqueues many tasks in one round trip; returns them in the order given. Nothing is written if any is invalid.
   * With `transaction`, writes them in that transaction.
   */
  async createTasks(specs: readonly TaskSpec[], options: CreateTasksOptions = {}): Promise<Task[]> {
    assertKnownKeys("createTasks", options, ["transaction"]);
    const prepared = this.#prepareAll(specs);
    if (prepared.length === 0) return [];
    if (options?.transaction !== undefined) return this.#writeIn(options.transaction, prepared, null);
    return (await this.#write(prepared)).tasks;
  }

  /**
   * Runs `fn` in a transaction on this client's pool and commits when it resolves (rolls back and rethrows when it
   * throws). `tx.db` is kysely on that transaction for the caller's own tables; `tx.createTask` and `tx.createTasks`
   * write in it. The bell rings for the tasks once the transaction has committed.
   */
  async transaction<T>(fn: (tx: ClientTransaction) => Promise<T>): Promise<T> {
    if (typeof fn !== "function") throw new InvalidOptionError("fn", "transaction expects a function (tx) => Promise");
    const written: Inserted[] = [];
    // Without the schema plugin of skiplock's own kysely: the caller's tables are not in skiplock's schema.
    this.#userDb ??= this.#store.db.withoutPlugins();
    const result = await this.#userDb.transaction().execute((trx) =>
      fn({
        db: trx,
        createTask: async <R = JsonValue>(name: string, args: readonly unknown[] = [], options = {}) => {
          assertKnownKeys("tx.createTask", options, TRANSACTION_TASK_OPTION_KEYS);
          const spec = prepareTask({ ...options, name, args }, "args", this.#maxArgsBytes);
          this.#assertQueueAllowed(spec.queue, "tx.createTask");
          return (await this.#writeIn(trx, [spec], written))[0] as Task<R>;
        },
        createTasks: async (specs) => {
          const prepared = this.#prepareAll(specs);
          return prepared.length === 0 ? [] : this.#writeIn(trx, prepared, written);
        },
      }),
    );
    this.#committed(written);
    return result;
  }

  /** Every spec checked (the queue allow-list too) before any is written. */
  #prepareAll(specs: readonly TaskSpec[]): TaskInsert[] {
    if (!Array.isArray(specs)) throw new InvalidOptionError("specs", "createTasks expects an array of task specs");
    return specs.map((s, i) => {
      const p = prepareTask(s, `specs[${i}].args`, this.#maxArgsBytes);
      this.#assertQueueAllowed(p.queue, `createTasks specs[${i}]`);
      return p;
    });
  }

  #assertQueueAllowed(queue: string, where: string): void {
    if (this.#queues !== null && !this.#queues.has(queue)) {
      throw new QueueNotAllowedError(queue, [...this.#queues], where);
    }
  }

  /** Writes on the client's pool (autocommit, or one transaction of its own) and rings the bell after. */
  async #write(prepared: TaskInsert[]): Promise<Inserted> {
    // The doorbell connects while the insert runs, so the first wake-up need not wait for it.
    void this.#notifier.start();
    const inserted = await writeTasks(this.#store.pool, this.#store.tasks, prepared);
    this.#committed([inserted]); // the insert has committed
    return inserted;
  }

  /**
   * Writes in the caller's transaction. Inside `client.transaction` (`own`), the bell rings after its commit;
   * otherwise the commit watcher rings it once it sees the caller's transaction commit.
   */
  async #writeIn(transaction: unknown, prepared: TaskInsert[], own: Inserted[] | null): Promise<Task[]> {
    const q = transactionQueryable(transaction);
    void this.#notifier.start();
    const bell = this.#config.redisUrl !== undefined || this.#store.embedded !== null;
    const watch = own === null && (bell || this.listenerCount("task:enqueued") > 0);
    const inserted = await writeTasks(q, this.#store.tasks, prepared, watch, this.#store.pool);
    if (own) own.push(inserted);
    else if (watch && inserted.xid !== null && inserted.changed.length > 0) {
      this.#watcher ??= new CommitWatcher<Inserted>(
        this.#store.pool,
        (committed) => this.#committed(committed),
        this.logger,
      );
      this.#watcher.watch(inserted.xid, [inserted]);
    }
    return inserted.tasks;
  }

  /** After the commit of these writes: wake-ups, and task:enqueued to its listeners. */
  #committed(writes: Inserted[]): void {
    for (const w of writes) {
      if (w.changed.length === 0) continue;
      publishWakes(this.#notifier, w.changed);
      if (this.listenerCount("task:enqueued") > 0) this.#emitEnqueued(w);
    }
  }

  /** Each listener is called on its own: one that throws (or rejects) is logged and never fails the enqueue. */
  #emitEnqueued(w: Inserted): void {
    const onError = (err: unknown) =>
      this.logger.error("a task:enqueued listener threw", { error: err instanceof Error ? err.message : String(err) });
    for (const task of w.changed) {
      const data = { task, replaced: w.replaced?.has(task) ?? false };
      for (const listener of this.rawListeners("task:enqueued")) {
        try {
          const r = (listener as (d: typeof data) => unknown).call(this, data);
          if (r instanceof Promise) r.catch(onError);
        } catch (err) {
          onError(err);
        }
      }
    }
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
   * unknown id, and TaskStateError when `options.expectStatus` (or `expectAttempt`) is not the task's now.
   */
  async cancelTask(id: string, options?: TaskActionOptions): Promise<Task> {
    const taskId = validateTaskId(id);
    const expect = checkExpectation(options);
    // The doorbell connects while the request runs, so the worker can be told at once.
    void this.#notifier.start();
    const row = await requestCancel(this.#store.pool, this.#store.tasks, taskId, expect);
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
    const unexpected = unexpectedState(taskId, "cancel", task, expect);
    if (unexpected) throw unexpected;
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
   * changed), and UniqueKeyConflictError when a newer live task holds its unique key. With `options.expectStatus`
   * (or `expectAttempt`), a task not in that status now is refused with TaskStateError too.
   */
  async retryTask(id: string, options?: TaskActionOptions): Promise<Task> {
    const taskId = validateTaskId(id);
    const expect = checkExpectation(options);
    for (let tries = 1; ; tries++) {
      let row: TaskRow | null = null;
      try {
        row = await retryFinishedTask(this.#store.pool, this.#store.tasks, taskId, expect);
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
      const unexpected = unexpectedState(taskId, "retry", state, expect);
      if (unexpected) throw unexpected;
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
   * unknown id and TaskStateError for a task that is not PENDING (or not as `options` expects).
   */
  async runTaskNow(id: string, options?: TaskActionOptions): Promise<Task> {
    const taskId = validateTaskId(id);
    const expect = checkExpectation(options);
    const row = await runPendingTaskNow(this.#store.pool, this.#store.tasks, taskId, expect);
    if (!row) {
      const state = await this.#stateOf(taskId);
      const unexpected = unexpectedState(taskId, "run now", state, expect);
      if (unexpected) throw unexpected;
      throw new TaskStateError(taskId, "run now", state.status, ["PENDING"]);
    }
    const { was_future: wasFuture, ...taskRow } = row;
    const task = rowToTask(taskRow);
    if (wasFuture) this.#ringFor(task);
    return task;
  }

  /**
   * Deletes a finished task (COMPLETED, FAILED or CANCELLED) and returns it as it was. Throws TaskNotFoundError for
   * an unknown id and TaskStateError for a PENDING or PROGRESS task (cancel it first), or one not as `options`
   * expects.
   */
  async deleteTask(id: string, options?: TaskActionOptions): Promise<Task> {
    const taskId = validateTaskId(id);
    const expect = checkExpectation(options);
    const row = await deleteFinishedTask(this.#store.pool, this.#store.tasks, taskId, expect);
    if (row) return rowToTask(row);
    const state = await this.#stateOf(taskId);
    const unexpected = unexpectedState(taskId, "delete", state, expect);
    if (unexpected) throw unexpected;
    throw new TaskStateError(taskId, "delete", state.status, [...FINAL_STATUSES], "cancel it first");
  }

  /**
   * A page of tasks, newest first, optionally only those of some statuses, a queue, a name or with some meta. Pass
   * the page's `next` as `after` for the following page (keyset paging: every page costs what the first does).
   */
  async listTasks(options: ListTasksOptions = {}): Promise<TaskPage> {
    const { pageSize, ...filter } = listFilter(options);
    return readTaskPage(this.#store.pool, this.#store.tasks, filter, pageSize);
  }

  /**
   * Tasks per queue and status. PENDING and PROGRESS are always exact; finished tasks are counted exactly while
   * there are at most `exactLimit` (default 50,000), beyond which COMPLETED counts are the planner's estimates
   * (`exact: false`, `estimated` names them). Cheap whatever the table's size.
   */
  async countTasks(options: CountTasksOptions = {}): Promise<TaskCounts> {
    const { pool, tasks, schema } = this.#store;
    return countTasksIn(pool, tasks, schema, exactLimitOf(options));
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
    const schedule = scheduleName(name);
    const schema = quoteIdent(this.#store.schema);
    if (this.#queues !== null) {
      // The allow-list holds for a trigger too, checked before anything is written.
      const stored = (await schedules.listSchedules(this.#store.pool, schema)).find((s) => s.name === schedule);
      if (stored) this.#assertQueueAllowed(stored.queue, "triggerSchedule");
    }
    const row = await schedules.triggerSchedule(this.#store.pool, schema, schedule);
    const task = rowToTask(found(name, row));
    void this.#notifier.start();
    this.#committed([{ tasks: [task], changed: [task], replaced: null, xid: null }]);
    return task;
  }

  /**
   * The worker registry: every worker started against this schema in the last day, live first, each with its host,
   * pid, queues, concurrency, running tasks and last heartbeat. `status` is "lost" once a worker has not been seen
   * for longer than its staleAfter, "stopped" after a clean stop.
   */
  listWorkers(): Promise<WorkerInfo[]> {
    return listWorkerRows(this.#store.pool, this.#store.workers);
  }

  /** Closes the connections; pending `waitForCompletion` calls reject with code CLIENT_CLOSED. */
  async close(): Promise<void> {
    this.#waiters.close();
    await this.#watcher?.stop(); // its last look rings for transactions that committed just before
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

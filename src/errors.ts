import type { TaskStatus } from "./task.js";

/**
 * Typed errors. Every error skiplock throws on purpose is a SkiplockError with a stable `code`, so callers can
 * branch on `err.code` (or `instanceof`) instead of parsing messages.
 */
export class SkiplockError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A value that JSON cannot carry faithfully (BigInt, function, cycle, `undefined` in an array, NaN, Map…). */
export class NotJsonError extends SkiplockError {
  /** Where in the value the problem sits, e.g. `args[1].when`. */
  readonly path: string;
  constructor(path: string, problem: string) {
    super("NOT_JSON", `${path} cannot be stored as JSON: ${problem}`);
    this.path = path;
  }
}

/** A schema, queue or task name that is not allowed. */
export class InvalidNameError extends SkiplockError {
  constructor(kind: string, value: unknown, rule: string) {
    super("INVALID_NAME", `invalid ${kind} ${JSON.stringify(value)}: ${rule}`);
  }
}

/** An option with a wrong type or out of range. */
export class InvalidOptionError extends SkiplockError {
  /** The option as the API names it (`maxRetries`, `retryBackoff.base`); the CLI shows its flag instead. */
  readonly option: string;
  /** What is wrong with it, without the option's name. */
  readonly problem: string;
  constructor(option: string, problem: string) {
    super("INVALID_OPTION", `invalid option ${option}: ${problem}`);
    this.option = option;
    this.problem = problem;
  }
}

/** Bad configuration: a malformed URL, a missing DATABASE_URL. */
export class ConfigError extends SkiplockError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("CONFIG", message, options);
  }
}

/**
 * Postgres could not be reached with the configured URL: refused, unresolvable or silent host, wrong password or
 * user, no such database. `cause` holds the driver's error.
 */
export class DatabaseUnavailableError extends SkiplockError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("DATABASE_UNAVAILABLE", message, options);
  }
}

/** The schema has no skiplock tables, or is behind the migrations this version ships. */
export class SchemaNotReadyError extends SkiplockError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("SCHEMA_NOT_READY", message, options);
  }
}

/** A task id that is not one skiplock could have issued. */
export class InvalidTaskIdError extends SkiplockError {
  constructor(id: unknown) {
    super("INVALID_TASK_ID", `invalid task id ${JSON.stringify(String(id))}: expected a positive integer string`);
  }
}

/** Raised inside a task (and recorded as its error) when it runs past its timeout. */
export class TaskTimeoutError extends SkiplockError {
  constructor(seconds: number) {
    super("TASK_TIMEOUT", `task timed out after ${seconds} s`);
  }
}

/** Recorded as the error of a task whose name no running worker registered. */
export class UnknownTaskError extends SkiplockError {
  constructor(name: string) {
    super(
      "UNKNOWN_TASK",
      `unknown task ${JSON.stringify(name)}: no handler with that name is registered with this worker`,
    );
  }
}

/** A handler threw something that is not an Error, or returned a value JSON cannot carry. */
export class HandlerError extends SkiplockError {
  constructor(message: string) {
    super("HANDLER_ERROR", message);
  }
}

/** Recorded on a task whose worker stopped heartbeating (killed, frozen, cut off) while it ran. */
export class WorkerLostError extends SkiplockError {
  constructor() {
    super("WORKER_LOST", "worker lost: no heartbeat from the worker running this task");
  }
}

/** No task with that id (it never existed, or was purged). */
export class TaskNotFoundError extends SkiplockError {
  constructor(id: string) {
    super("TASK_NOT_FOUND", `no task with id ${id}`);
  }
}

/** The reason a running task's AbortSignal fires when its worker shuts down before the task finished. */
export class WorkerShutdownError extends SkiplockError {
  constructor() {
    super("WORKER_SHUTDOWN", "worker shutting down: the task was handed back to the queue");
  }
}

// Payload limits, outcomes Postgres refuses, and unknown option names (json.ts, options.ts, worker/completer.ts).

/** Task arguments or a result larger than its limit (`maxArgsBytes`, `maxResultBytes`), as UTF-8 JSON text. */
export class PayloadTooLargeError extends SkiplockError {
  /** What was too large, e.g. `args` or `specs[2].args` or `result`. */
  readonly path: string;
  readonly bytes: number;
  readonly limit: number;
  constructor(path: string, bytes: number, limit: number, option: string) {
    super(
      "PAYLOAD_TOO_LARGE",
      `${path} is ${mebibytes(bytes)} of JSON, more than ${option} allows (${mebibytes(limit)})`,
    );
    this.path = path;
    this.bytes = bytes;
    this.limit = limit;
  }
}

function mebibytes(bytes: number): string {
  return bytes < 1024 * 1024 ? `${bytes} bytes` : `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** Recorded on a task whose result or error Postgres refused to store: the task fails with this instead. */
export class OutcomeNotStorableError extends SkiplockError {
  constructor(problem: string, options?: { cause?: unknown }) {
    super("OUTCOME_NOT_STORABLE", `Postgres could not store this task's outcome: ${problem}`, options);
  }
}

/** An option name that the call does not know: a typo, or an option of another call. */
export class UnknownOptionError extends InvalidOptionError {
  /** The option names the call knows. */
  readonly validOptions: readonly string[];
  constructor(option: string, where: string, validOptions: readonly string[], suggestion?: string) {
    const hint = suggestion === undefined ? "" : ` (did you mean ${suggestion}?)`;
    super(option, `not an option of ${where}${hint}; valid options are ${validOptions.join(", ")}`);
    this.validOptions = validOptions;
  }
}

// Task handles (define.ts).

/** A handle's getResult or waitFor was given the id of a task of another name: its result has another type. */
export class TaskNameMismatchError extends SkiplockError {
  readonly id: string;
  /** The handle's task name. */
  readonly expected: string;
  /** The name of the task with that id. */
  readonly actual: string;
  constructor(id: string, expected: string, actual: string) {
    super(
      "TASK_NAME_MISMATCH",
      `task ${id} is a ${JSON.stringify(actual)} task, not ${JSON.stringify(expected)}: read it with getTask(id) or its own handle`,
    );
    this.id = id;
    this.expected = expected;
    this.actual = actual;
  }
}

// Managing tasks: retryTask, runTaskNow, deleteTask (client.ts, sql/admin-*.ts).

/**
 * The task is not in a state the call can act on: retrying a task that has not failed, deleting one that is still
 * pending or running. Nothing was changed. `status` is what the task was found in, `expected` what the call needs.
 */
export class TaskStateError extends SkiplockError {
  readonly id: string;
  readonly status: TaskStatus;
  readonly expected: readonly TaskStatus[];
  constructor(id: string, action: string, status: TaskStatus, expected: readonly TaskStatus[], hint?: string) {
    const needs = expected.length === 1 ? expected[0] : `${expected.slice(0, -1).join(", ")} or ${expected.at(-1)}`;
    super("TASK_STATE", `cannot ${action} task ${id}: it is ${status}, expected ${needs}${hint ? ` (${hint})` : ""}`);
    this.id = id;
    this.status = status;
    this.expected = expected;
  }
}

/**
 * Retrying a task whose unique key a newer live task holds: two live tasks cannot share a key. The task stays as
 * it was; retry it once the holder has finished, or cancel the holder first.
 */
export class UniqueKeyConflictError extends SkiplockError {
  readonly id: string;
  readonly uniqueKey: string;
  /** The live task holding the key. */
  readonly holderId: string;
  constructor(id: string, uniqueKey: string, holderId: string) {
    super(
      "UNIQUE_KEY_CONFLICT",
      `cannot retry task ${id}: its unique key ${JSON.stringify(uniqueKey)} is held by live task ${holderId}`,
    );
    this.id = id;
    this.uniqueKey = uniqueKey;
    this.holderId = holderId;
  }
}

// Cancelling running tasks, progress and metadata (worker/executor.ts, worker/reports.ts).

/**
 * The reason a running task's AbortSignal fires when `cancelTask` asked for it; recorded on a task abandoned after
 * `cancelGrace`.
 */
export class TaskCancelledError extends SkiplockError {
  constructor(message = "the task was cancelled") {
    super("TASK_CANCELLED", message);
  }
}

// Enqueueing: the queue allow-list and the caller's own transaction (client.ts, transaction.ts).

/** A task for a queue the client's allow-list (`queues`, SKIPLOCK_QUEUES) does not name; nothing was written. */
export class QueueNotAllowedError extends SkiplockError {
  readonly queue: string;
  /** The queues this client may enqueue to. */
  readonly allowed: readonly string[];
  constructor(queue: string, allowed: readonly string[], where = "createTask") {
    super(
      "QUEUE_NOT_ALLOWED",
      `${where}: queue ${JSON.stringify(queue)} is not allowed by this client (queues: ${allowed.join(", ")})`,
    );
    this.queue = queue;
    this.allowed = allowed;
  }
}

/**
 * The `transaction` given to createTask or createTasks cannot take the insert: it was committed or rolled back, its
 * client was closed, it is aborted (a statement in it failed), or the client is not inside BEGIN at all.
 */
export class TransactionNotOpenError extends SkiplockError {
  constructor(problem: string, options?: { cause?: unknown }) {
    super("TRANSACTION_NOT_OPEN", `cannot enqueue in the given transaction: ${problem}`, options);
  }
}

// Retry policy (define.ts, worker/attempts.ts).

/**
 * Thrown by a handler for a failure no retry can fix (bad input, a record that no longer exists): the task fails for
 * good at once, whatever retries it has left. Recognised by its `code`, so it works across module copies and threads.
 */
export class PermanentError extends SkiplockError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("PERMANENT", message, options);
  }
}

// Schedules (schedule/definition.ts, client.ts).

/** A schedule declared with a bad cron, an unknown timezone or task, a duplicate name, or a wrong option. */
export class InvalidScheduleError extends SkiplockError {
  /** The schedule's name as declared (or its index, `schedules[2]`, when it has no usable name). */
  readonly schedule: string;
  /** The field that is wrong: `cron`, `timezone`, `task`, `name`, `args`, `backfill`, … */
  readonly field: string;
  constructor(schedule: string, field: string, problem: string) {
    super("INVALID_SCHEDULE", `invalid schedule ${schedule}: ${field} ${problem}`);
    this.schedule = schedule;
    this.field = field;
  }
}

/** No stored schedule has that name (no worker declaring it has started against this schema). */
export class ScheduleNotFoundError extends SkiplockError {
  readonly schedule: string;
  constructor(name: string) {
    super("SCHEDULE_NOT_FOUND", `no schedule named ${JSON.stringify(name)}`);
    this.schedule = name;
  }
}

// The dashboard (dashboard/).

/**
 * A dashboard request refused before it reached the database: not signed in (401), a missing CSRF token, a foreign
 * Origin, read-only mode, no token off loopback (403), a malformed or oversized body (400, 413, 415), an unknown
 * route (404). `status` is the HTTP status it answers with; the message never carries a token or a cookie.
 */
export class DashboardRequestError extends SkiplockError {
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(code, message);
    this.status = status;
  }
}

// Embedded mode (embedded/): the database in the process (PGlite).

/**
 * Another process holds the embedded database directory: PGlite serves one process, and a second one writing the
 * same files would corrupt them. `holderPid` is the process named in the directory's lock file.
 */
export class EmbeddedDatabaseLockedError extends SkiplockError {
  readonly directory: string;
  readonly holderPid: number;
  constructor(directory: string, holderPid: number) {
    super(
      "EMBEDDED_DATABASE_LOCKED",
      `the embedded database ${directory} is in use by process ${holderPid}: an embedded database serves one ` +
        "process at a time (stop that process, or use a real Postgres server to share tasks between processes)",
    );
    this.directory = directory;
    this.holderPid = holderPid;
  }
}

/** A `pglite:` database URL was given, but the optional package that runs it is not installed. */
export class EmbeddedDependencyMissingError extends SkiplockError {
  readonly packageName: string;
  constructor(packageName: string, options?: { cause?: unknown }) {
    super(
      "EMBEDDED_DEPENDENCY_MISSING",
      `a pglite: database URL needs the optional package ${packageName}: npm install ${packageName}`,
      options,
    );
    this.packageName = packageName;
  }
}

// PgBouncer (db/pgbouncer.ts).

/**
 * A skiplock prepared statement was missing on the connection, or already there: the connection is shared between
 * clients, as PgBouncer in transaction pooling mode does. `cause` holds the driver's error (26000 or 42P05).
 */
export class PoolerSessionError extends SkiplockError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("POOLER_SESSION", message, options);
  }
}

// Redis connections: Sentinel and TLS (notify/).

/**
 * A Redis URL or Redis TLS option that cannot be used: a malformed `redis+sentinel://` URL (no sentinel, no master
 * name, a bad port), TLS files that cannot be read, TLS options with a `redis://` URL. Its message never shows a
 * password. A ConfigError, so code that handles those handles these.
 */
export class RedisConfigError extends ConfigError {}

// The dashboard's trigger endpoints (runner/).

/**
 * `api/execute/:id` named a task whose name has no handler where the call runs: it is left PENDING, for a worker
 * that has one, rather than claimed and failed here.
 */
export class NoHandlerError extends SkiplockError {
  readonly id: string;
  readonly taskName: string;
  constructor(id: string, taskName: string) {
    super(
      "NO_HANDLER",
      `cannot execute task ${id} here: no handler for ${JSON.stringify(taskName)} among this dashboard's tasks; it stays PENDING for a worker that has one`,
    );
    this.id = id;
    this.taskName = taskName;
  }
}

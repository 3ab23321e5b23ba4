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

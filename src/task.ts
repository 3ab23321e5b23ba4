import {
  DEFAULT_QUEUE,
  DEFAULT_TIMEOUT,
  describeValue,
  validateInteger,
  validateQueueName,
  validateSeconds,
  validateTaskName,
} from "./config.js";
import { InvalidOptionError, InvalidTaskIdError, NotJsonError } from "./errors.js";
import { DEFAULT_MAX_PAYLOAD_BYTES, toJsonText } from "./json.js";
import { assertKnownKeys } from "./options.js";
import type { TransactionLike } from "./transaction.js";

export const TASK_STATUSES = ["PENDING", "PROGRESS", "COMPLETED", "FAILED", "CANCELLED"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const FINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A task as stored. Times are in seconds, as in the tasks table. */
export interface Task<Result = JsonValue> {
  /** Opaque string id. */
  id: string;
  name: string;
  args: JsonValue[];
  queue: string;
  priority: number;
  status: TaskStatus;
  /** The JSON value the handler returned, once COMPLETED. */
  result: Result | null;
  /** The last failure: message and stack. */
  error: string | null;
  retryCount: number;
  /** Retries allowed; null until a worker claims the task and writes in its default (`--retry`). */
  maxRetries: number | null;
  /** Seconds an attempt may run. */
  timeout: number;
  runAt: Date;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Seconds from the last start to the finish. */
  duration: number | null;
  /** Attempts started so far (counted when claimed). */
  attempt: number;
  uniqueKey: string | null;
  workerId: string | null;
  heartbeatAt: Date | null;
  /** cancelTask was called while the task ran: its worker stops it (a PENDING task is cancelled outright instead). */
  cancelRequested: boolean;
  /** The last progress the handler reported, or null. */
  progress: TaskProgress | null;
  /** Every failed attempt's error, oldest first (bounded: see TaskError). */
  errors: TaskError[];
  /** What was attached at enqueue and by the handler's `taskContext().setMeta()`: a JSON object. */
  meta: { [key: string]: JsonValue };
  /** The schedule and tick that enqueued this task (see Schedules), or null. */
  schedule: { name: string; tick: Date } | null;
}

/** Progress as a handler reports it through `taskContext().progress(fraction, message?)`. */
export interface TaskProgress {
  /** 0..1 */
  fraction: number;
  message: string | null;
  /** When the worker recorded it. */
  at: Date;
}

/** One failed attempt. */
export interface TaskError {
  /** The error's name (`TypeError`, `TaskTimeoutError`, `WorkerLostError`, …). */
  type: string;
  message: string;
  stack: string | null;
  /** The attempt that failed (1 for the first). */
  attempt: number;
  /** The worker that ran it, when known. */
  workerId: string | null;
  at: Date;
}

export interface TaskOptions {
  /** Queue name, default "default". */
  queue?: string;
  /** An integer in -100..100; higher runs first; default 0. */
  priority?: number;
  /** Seconds one attempt may run; default 300. */
  timeout?: number;
  /** Retries after the first attempt fails; default: the worker's `maxRetries` (`--retry`), itself 0 by default. */
  maxRetries?: number;
  /** Not before this time. */
  runAt?: Date;
  /** Not before this many seconds from now. */
  delay?: number;
  /**
   * At most one live task per key: while a task with this key is PENDING or PROGRESS, another enqueue with it
   * returns that task (`uniqueMode: "keep"`) or updates it (`"replace"`). Keys are shared by all task names and
   * queues; once the task is final the key is free again.
   */
  uniqueKey?: string;
  /**
   * With `uniqueKey`: "keep" (default) returns the live task as it is; "replace" gives a still-PENDING task this
   * call's args, runAt, priority and meta (debounce), and queues a new task when the holder is already running.
   */
  uniqueMode?: UniqueMode;
  /** A JSON object stored with the task (a request id, a tenant, a link); at most 64 KiB of JSON. */
  meta?: { [key: string]: unknown };
  /**
   * Write the task in this open transaction: a kysely `Transaction` or a node-postgres `Client`/`PoolClient` after
   * BEGIN. The task exists, and can run, only once the caller commits.
   */
  transaction?: TransactionLike;
}

export type UniqueMode = "keep" | "replace";

/** A task as createTasks takes it: the options of one task (a transaction is createTasks' own second argument). */
export interface TaskSpec extends Omit<TaskOptions, "transaction"> {
  name: string;
  args?: readonly unknown[];
}

/**
 * Where a handler runs: "inline" on the worker's main thread (a timeout fails the task and fires its signal but
 * cannot stop code that never yields), or "thread" in a worker thread terminated at the timeout.
 */
export type Isolation = "inline" | "thread";

/** An isolation mode as given (undefined: not given); anything but "inline" or "thread" is an InvalidOptionError. */
export function validateIsolation(value: unknown, what = "isolation"): Isolation | undefined {
  if (value === undefined || value === "inline" || value === "thread") return value;
  throw new InvalidOptionError("isolation", `${what}: expected "inline" or "thread", got ${JSON.stringify(value)}`);
}

/** A task made with defineTask, as far as a worker is concerned (what a tasks module's exports are checked for). */
export interface TaskDefinitionLike {
  readonly name: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any parameters: the handler's own types are its.
  readonly handler: (...args: any[]) => unknown;
  readonly options?: { isolation?: string; queue?: string };
}

/** Every key of TaskOptions, for refusing unknown ones at run time (a key missing here fails the typecheck below). */
export const TASK_OPTION_KEYS = [
  "queue",
  "priority",
  "timeout",
  "maxRetries",
  "runAt",
  "delay",
  "uniqueKey",
  "uniqueMode",
  "meta",
  "transaction",
] as const;
const TASK_SPEC_KEYS: readonly string[] = ["name", "args", ...TASK_OPTION_KEYS.filter((k) => k !== "transaction")];
// Compiles only while TASK_OPTION_KEYS lists every option of TaskOptions.
const everyOptionListed: Exclude<keyof TaskOptions, (typeof TASK_OPTION_KEYS)[number]> extends never ? true : never =
  true;
void everyOptionListed;

/** The longest `delay`, in seconds (validateSeconds' upper bound), and so how far ahead `runAt` may be. */
const MAX_SECONDS = 10 * 365 * 24 * 3600;
const MAX_AHEAD_MS = MAX_SECONDS * 1000;
/** The earliest timestamptz Postgres stores: 4713-11-24 BC (JavaScript's year -4712). */
const EARLIEST_RUN_AT = Date.UTC(-4712, 10, 24);

/** A spec checked and serialized, ready for the insert statement. */
export interface TaskInsert {
  name: string;
  argsJson: string;
  queue: string;
  priority: number;
  timeout: number;
  maxRetries: number | null;
  /** Absolute time, or null for "now" by the database clock. */
  runAt: Date | null;
  /** Seconds after the database's now(); 0 when runAt is given or neither is. */
  delay: number;
  uniqueKey: string | null;
  /** uniqueMode "replace" (only with a uniqueKey). */
  replace: boolean;
  /** The meta object as JSON text, or null for none ({}). */
  metaJson: string | null;
}

/** Priorities are small integers, higher first: enough levels to order work, few enough to reason about. */
export const MIN_PRIORITY = -100;
export const MAX_PRIORITY = 100;
/** The longest uniqueKey, in characters: keys are btree index entries, which must stay well under 2,700 bytes. */
export const MAX_UNIQUE_KEY_LENGTH = 512;
/** The most JSON text a task's meta may be, in UTF-8 bytes: meta is for small labels, not payloads. */
export const MAX_META_BYTES = 64 * 1024;

/**
 * Validates a task spec before anything is written. Throws a typed error naming the problem: an unknown option key
 * (UnknownOptionError), args JSON or Postgres cannot carry (NotJsonError, with the path), args over `maxArgsBytes`
 * of JSON (PayloadTooLargeError). `where` is the args' path in messages: "args" for createTask, "specs[i].args" for
 * createTasks.
 */
export function prepareTask(spec: TaskSpec, where = "args", maxArgsBytes = DEFAULT_MAX_PAYLOAD_BYTES): TaskInsert {
  // Named only for an error: createTasks checks thousands of specs.
  const call = () => (where === "args" ? "createTask" : `createTasks ${where.replace(/\.args$/, "")}`);
  if (spec === null || typeof spec !== "object") throw new InvalidOptionError("options", `${call()} expects an object`);
  assertKnownKeys(call, spec, TASK_SPEC_KEYS);
  const name = validateTaskName(spec.name);
  const args = spec.args ?? [];
  if (!Array.isArray(args)) throw new NotJsonError(where, "task arguments must be an array (the handler's parameters)");
  const argsJson = toJsonText(args, where, maxArgsBytes, "maxArgsBytes");
  const queue = validateQueueName(spec.queue ?? DEFAULT_QUEUE);
  const priority = validateInteger("priority", spec.priority ?? 0, MIN_PRIORITY, MAX_PRIORITY);
  const timeout = validateSeconds("timeout", spec.timeout ?? DEFAULT_TIMEOUT, 0.001);
  const maxRetries =
    spec.maxRetries === undefined ? null : validateInteger("maxRetries", spec.maxRetries, 0, 1_000_000);
  if (spec.runAt !== undefined && spec.delay !== undefined) {
    throw new InvalidOptionError("runAt/delay", "give one of runAt and delay, not both");
  }
  let runAt: Date | null = null;
  if (spec.runAt !== undefined) {
    if (!(spec.runAt instanceof Date) || Number.isNaN(spec.runAt.getTime())) {
      throw new InvalidOptionError("runAt", "expected a valid Date");
    }
    if (spec.runAt.getTime() > Date.now() + MAX_AHEAD_MS) {
      throw new InvalidOptionError(
        "runAt",
        `expected a time at most ${MAX_SECONDS} s (10 years) from now, as for delay, got ${spec.runAt.toISOString()}`,
      );
    }
    if (spec.runAt.getTime() < EARLIEST_RUN_AT) {
      throw new InvalidOptionError(
        "runAt",
        `expected a time Postgres can store (from 4713 BC), got ${spec.runAt.toISOString()}`,
      );
    }
    runAt = spec.runAt;
  }
  const delay = spec.delay === undefined ? 0 : validateSeconds("delay", spec.delay);
  const uniqueKey = spec.uniqueKey === undefined ? null : validateUniqueKey(spec.uniqueKey);
  const replace = validateUniqueMode(spec.uniqueMode, uniqueKey) === "replace";
  const metaJson = spec.meta === undefined ? null : metaText(spec.meta, where.replace(/args$/, "meta"));
  return { name, argsJson, queue, priority, timeout, maxRetries, runAt, delay, uniqueKey, replace, metaJson };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function validateUniqueKey(key: unknown): string {
  if (typeof key !== "string" || key.length === 0 || key.length > MAX_UNIQUE_KEY_LENGTH) {
    throw new InvalidOptionError(
      "uniqueKey",
      `expected a string of 1 to ${MAX_UNIQUE_KEY_LENGTH} characters, got ${describeValue(key)}`,
    );
  }
  // Postgres text cannot hold NUL, and a lone surrogate has no UTF-8 form.
  if (key.includes("\0") || LONE_SURROGATE.test(key)) {
    throw new InvalidOptionError("uniqueKey", "a NUL character or a lone UTF-16 surrogate cannot be stored");
  }
  return key;
}

function validateUniqueMode(mode: unknown, uniqueKey: string | null): UniqueMode {
  if (mode === undefined) return "keep";
  if (mode !== "keep" && mode !== "replace") {
    throw new InvalidOptionError("uniqueMode", `expected "keep" or "replace", got ${describeValue(mode)}`);
  }
  if (uniqueKey === null) throw new InvalidOptionError("uniqueMode", "needs a uniqueKey");
  return mode;
}

/** meta checked as args are (NotJsonError with the path, PayloadTooLargeError), and a plain object. */
function metaText(meta: unknown, path: string): string {
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) {
    throw new NotJsonError(path, `meta must be a plain object, got ${describeValue(meta)}`);
  }
  return toJsonText(meta, path, MAX_META_BYTES, "the meta limit");
}

/**
 * createTask's arguments checked, as every client checks them: the spec ready for the insert, and the transaction
 * given (the writer checks that one).
 */
export function prepareCreateTask(
  name: string,
  args: readonly unknown[],
  options: TaskOptions,
  maxArgsBytes?: number,
): { spec: TaskInsert; transaction: TaskOptions["transaction"] } {
  assertKnownKeys("createTask", options, TASK_OPTION_KEYS);
  const { transaction, ...taskOptions } = options ?? {};
  return { spec: prepareTask({ ...taskOptions, name, args }, "args", maxArgsBytes), transaction };
}

/** Task ids are bigints rendered as strings; anything else is refused before it reaches SQL. */
export function validateTaskId(id: unknown): string {
  const s = typeof id === "number" && Number.isSafeInteger(id) ? String(id) : id;
  if (typeof s !== "string" || !/^[1-9][0-9]{0,18}$/.test(s) || BigInt(s) > 9223372036854775807n) {
    throw new InvalidTaskIdError(id);
  }
  return s;
}

/**
 * One attempt of a task, as a worker holds it: with the worker's id, the lease (id, attempt, worker id) that every
 * outcome of the attempt compares and sets.
 */
export interface Claim {
  id: string;
  attempt: number;
}

/** Orders task ids (decimal bigint strings) numerically. */
export function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** The columns every statement returns, in SQL. */
export const TASK_COLUMNS = `id, name, args, queue, priority, status, result, error, retry_count, max_retries, timeout,
  run_at, created_at, updated_at, started_at, finished_at, duration, attempt, unique_key, worker_id, heartbeat_at,
  cancel_requested, progress, errors, meta, schedule_name, schedule_tick`;

export interface TaskRow {
  id: string;
  name: string;
  args: JsonValue[];
  queue: string;
  priority: number;
  status: TaskStatus;
  result: JsonValue | null;
  error: string | null;
  retry_count: number;
  max_retries: number | null;
  timeout: number;
  run_at: Date;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  duration: number | null;
  attempt: number;
  unique_key: string | null;
  worker_id: string | null;
  heartbeat_at: Date | null;
  cancel_requested: boolean;
  progress: StoredProgress | null;
  errors: StoredError[];
  meta: { [key: string]: JsonValue };
  schedule_name: string | null;
  schedule_tick: Date | null;
}

/** TaskProgress as the progress column holds it (JSON: the time as text). */
export interface StoredProgress {
  fraction: number;
  message: string | null;
  at: string;
}

/** TaskError as the errors column holds it (JSON: the time as text). */
export interface StoredError {
  type: string;
  message: string;
  stack: string | null;
  attempt: number;
  workerId: string | null;
  at: string;
}

/**
 * The task a fresh insert reads back as: the input as prepared, plus what the database decided (id, args as jsonb
 * returns them, created_at, and run_at, null when it equals created_at). Field for field what getTask returns.
 */
export function insertedTask(p: TaskInsert, id: string, args: JsonValue[], createdAt: Date, runAt: Date | null): Task {
  return {
    id,
    name: p.name,
    args,
    queue: p.queue,
    priority: p.priority,
    status: "PENDING",
    result: null,
    error: null,
    retryCount: 0,
    maxRetries: p.maxRetries,
    timeout: p.timeout,
    runAt: runAt ?? new Date(createdAt.getTime()),
    createdAt,
    updatedAt: new Date(createdAt.getTime()),
    startedAt: null,
    finishedAt: null,
    duration: null,
    attempt: 0,
    uniqueKey: p.uniqueKey,
    workerId: null,
    heartbeatAt: null,
    cancelRequested: false,
    progress: null,
    errors: [],
    meta: p.metaJson === null ? {} : (JSON.parse(p.metaJson) as { [key: string]: JsonValue }),
    schedule: null,
  };
}

export function rowToTask<R = JsonValue>(row: TaskRow): Task<R> {
  return {
    id: String(row.id),
    name: row.name,
    args: row.args,
    queue: row.queue,
    priority: row.priority,
    status: row.status,
    result: row.result as R | null,
    error: row.error,
    retryCount: row.retry_count,
    maxRetries: row.max_retries,
    timeout: row.timeout,
    runAt: row.run_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    duration: row.duration,
    attempt: row.attempt,
    uniqueKey: row.unique_key,
    workerId: row.worker_id,
    heartbeatAt: row.heartbeat_at,
    cancelRequested: row.cancel_requested,
    progress: row.progress ? { ...row.progress, at: new Date(row.progress.at) } : null,
    errors: (row.errors ?? []).map((e) => ({ ...e, at: new Date(e.at) })),
    meta: row.meta ?? {},
    schedule: row.schedule_name ? { name: row.schedule_name, tick: row.schedule_tick! } : null,
  };
}

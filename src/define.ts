import { currentClient, type WaitOptions } from "./client.js";
import { validateSeconds, validateTaskName } from "./config.js";
import { InvalidOptionError, TaskNameMismatchError, TaskNotFoundError } from "./errors.js";
import type { JsonChecked } from "./json.js";
import { assertKnownKeys } from "./options.js";
import { isTaskClient, type CreateTasksOptions, type TaskClient } from "./task-client.js";
import { validateRetryPolicy, type Backoff, type RetryOn } from "./retry-policy.js";
import {
  FINAL_STATUSES,
  prepareTask,
  TASK_OPTION_KEYS,
  validateIsolation,
  type Isolation,
  type Task,
  type TaskDefinitionLike,
  type TaskOptions,
} from "./task.js";

/** A definition's default options: TaskOptions (but no transaction: that belongs to one enqueue), and isolation. */
export interface DefineOptions extends Omit<TaskOptions, "transaction"> {
  /** Run this task in a worker thread terminated at its timeout, whatever the worker's default (needs tasksModule). */
  isolation?: Isolation;
  /** Seconds before a retry: `(attempt) => seconds` (1 for the first failed attempt), or `{ base, max }`. */
  backoff?: Backoff;
  /** Whether a failure is worth a retry; `false` fails the task for good at once. */
  retryOn?: RetryOn;
}

/** What `using()` layers over a handle's options. */
export interface EnqueueOptions extends TaskOptions {
  /** The client to enqueue and read with; default the one setDefaultClient set, else the one from the environment. */
  client?: TaskClient;
}

/**
 * A typed way to enqueue a task and read its outcome: the arguments are the handler's parameters, the result its
 * return value. Every method works through the handle's client (see EnqueueOptions.client).
 */
export interface TaskHandle<A extends unknown[] = unknown[], R = unknown> {
  readonly name: string;
  /** Enqueues the task with these arguments and the handle's options. */
  enqueue(...args: A): Promise<Task<Awaited<R>>>;
  /** Enqueues one task per argument list, in one round trip (createTasks); returns them in the same order. */
  enqueueMany(argsList: readonly A[]): Promise<Task<Awaited<R>>[]>;
  /** A new handle whose options are these over this one's (this one is unchanged): `.using({ delay: 60 })`. */
  using(options?: EnqueueOptions): TaskHandle<A, R>;
  /** The task, or null when no task has that id; a task of another name is a TaskNameMismatchError. */
  getResult(id: string): Promise<Task<Awaited<R>> | null>;
  /**
   * The task once it is COMPLETED, FAILED or CANCELLED, or null when `timeout` seconds pass first. An unknown id is
   * a TaskNotFoundError and a task of another name a TaskNameMismatchError, both before any wait.
   */
  waitFor(id: string, options?: WaitOptions): Promise<Task<Awaited<R>> | null>;
}

/** A handle made by defineTask: also what a worker registers (its name, handler and default options). */
export interface TaskDefinition<A extends unknown[] = unknown[], R = unknown>
  extends TaskHandle<A, R>, TaskDefinitionLike {
  readonly handler: (...args: A) => R | Promise<R>;
  readonly options: DefineOptions;
}

const DEFINE_OPTION_KEYS: readonly string[] = [
  ...TASK_OPTION_KEYS.filter((k: string) => k !== "transaction"),
  "isolation",
  "backoff",
  "retryOn",
];
const ENQUEUE_OPTION_KEYS: readonly string[] = [...TASK_OPTION_KEYS, "client"];

/**
 * Names a handler and its default options. Register the result with a worker (or export it from a `--tasks`
 * module) and enqueue through it with checked argument types.
 *
 * The handler's parameters and result travel as JSON, so their types must be ones JSON carries unchanged: a
 * parameter or result typed `Date`, `Map`, `bigint`, a function or a class instance does not compile (a Date would
 * reach the handler as a string; declare a string and pass `date.toISOString()`).
 */
export function defineTask<A extends unknown[], R>(
  name: string,
  handler: ((...args: A) => R | Promise<R>) & JsonChecked<A, R>,
  options: DefineOptions = {},
): TaskDefinition<A, R> {
  validateTaskName(name);
  if (typeof handler !== "function")
    throw new InvalidOptionError("handler", `defineTask(${JSON.stringify(name)}): handler must be a function`);
  assertKnownKeys(`defineTask(${JSON.stringify(name)})`, options, DEFINE_OPTION_KEYS);
  const { isolation, backoff, retryOn, ...taskOptions } = options;
  validateIsolation(isolation, `defineTask(${JSON.stringify(name)})`);
  validateRetryPolicy({ backoff, retryOn }, `defineTask(${JSON.stringify(name)})`);
  prepareTask({ name, ...taskOptions }); // options are checked now, not at the first enqueue
  const handle = makeHandle<A, R>(name, layer({}, taskOptions), undefined);
  return Object.freeze({ ...handle, handler, options });
}

/**
 * A handle on `name` with `options` (checked already) and `client`. Its methods are closures, so they work detached
 * (`args.map(send.enqueue)`); enqueue passes the options object as it is, so createTask's own checks are the only
 * ones per call.
 */
function makeHandle<A extends unknown[], R>(
  name: string,
  options: TaskOptions,
  client: TaskClient | undefined,
): TaskHandle<A, R> {
  type T = Task<Awaited<R>>;
  const clientNow = () => client ?? currentClient();
  // A transaction is one argument of createTasks for the whole batch, not an option of each spec.
  const { transaction, ...specOptions } = options as TaskOptions & { transaction?: unknown };
  const batchOptions = (transaction === undefined ? undefined : { transaction }) as CreateTasksOptions | undefined;
  return Object.freeze({
    name,
    enqueue: (...args: A): Promise<T> => clientNow().createTask<Awaited<R>>(name, args, options),
    enqueueMany: (argsList: readonly A[]): Promise<T[]> => {
      if (!Array.isArray(argsList)) {
        return Promise.reject(
          new InvalidOptionError("argsList", `${name}.enqueueMany expects an array of argument lists`),
        );
      }
      const specs = argsList.map((args) => ({ ...specOptions, name, args }));
      return clientNow().createTasks(specs, batchOptions) as Promise<T[]>;
    },
    using: (extra: EnqueueOptions = {}): TaskHandle<A, R> => {
      assertKnownKeys(`${JSON.stringify(name)}.using()`, extra, ENQUEUE_OPTION_KEYS);
      const { client: own, ...rest } = extra ?? {};
      if (own !== undefined && !isTaskClient(own)) {
        throw new InvalidOptionError("client", "expected a client (SkiplockClient, ImmediateClient, DummyClient)");
      }
      const layered = layer(options, rest);
      // As defineTask: a bad option fails here, not at an enqueue (the transaction is createTask's to check).
      const { transaction: _, ...checked } = layered as TaskOptions & { transaction?: unknown };
      prepareTask({ name, ...checked });
      return makeHandle<A, R>(name, layered, own ?? client);
    },
    getResult: async (id: string): Promise<T | null> => {
      const task = await clientNow().getTask<Awaited<R>>(id);
      if (task && task.name !== name) throw new TaskNameMismatchError(task.id, name, task.name);
      return task;
    },
    waitFor: async (id: string, waitOptions: WaitOptions = {}): Promise<T | null> => {
      const { timeout } = waitOptions;
      if (timeout !== undefined) validateSeconds("timeout", timeout);
      const c = clientNow();
      const began = Date.now();
      // Read first: a wrong id fails at once instead of after the wait, and a finished task needs no wait.
      const task = await c.getTask<Awaited<R>>(id);
      if (!task) throw new TaskNotFoundError(String(id));
      if (task.name !== name) throw new TaskNameMismatchError(task.id, name, task.name);
      if (FINAL_STATUSES.has(task.status)) return task;
      const left = timeout === undefined ? undefined : Math.max(0, timeout - (Date.now() - began) / 1000);
      return c.waitForCompletion<Awaited<R>>(task.id, { ...waitOptions, timeout: left });
    },
  });
}

/**
 * `extra` over `base`. A key given as undefined is not given; a time given one way replaces the other (a `runAt`
 * over a `delay`, or the reverse), so that a layer can always reschedule.
 */
function layer(base: TaskOptions, extra: TaskOptions): TaskOptions {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) continue;
    if (key === "runAt") delete out.delay;
    if (key === "delay") delete out.runAt;
    out[key] = value;
  }
  for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key];
  return out as TaskOptions;
}

import { getDefaultClient, type SkiplockClient } from "./client.js";
import { validateTaskName } from "./config.js";
import type { JsonChecked } from "./json.js";
import { assertKnownKeys } from "./options.js";
import { validateRetryPolicy, type Backoff, type RetryOn } from "./retry-policy.js";
import {
  prepareTask,
  TASK_OPTION_KEYS,
  validateIsolation,
  type Isolation,
  type Task,
  type TaskDefinitionLike,
  type TaskOptions,
} from "./task.js";

export interface DefineOptions extends TaskOptions {
  /** Run this task in a worker thread terminated at its timeout, whatever the worker's default (needs tasksModule). */
  isolation?: Isolation;
  /** Seconds before a retry: `(attempt) => seconds` (1 for the first failed attempt), or `{ base, max }`. */
  backoff?: Backoff;
  /** Whether a failure is worth a retry; `false` fails the task for good at once. */
  retryOn?: RetryOn;
}

export interface EnqueueOptions extends TaskOptions {
  /** The client to enqueue with; default the module-level client from the environment. */
  client?: SkiplockClient;
}

/** A typed handle on a task: its name, handler and default options, and a typed `enqueue`. */
export interface TaskDefinition<A extends unknown[] = unknown[], R = unknown> extends TaskDefinitionLike {
  readonly name: string;
  readonly handler: (...args: A) => R | Promise<R>;
  readonly options: DefineOptions;
  /** Enqueues the task with these arguments and the definition's options. */
  enqueue(...args: A): Promise<Task<Awaited<R>>>;
  /** The same task with some options overridden for the next enqueue: `.using({ priority: 5 }).enqueue(…)`. */
  using(options: EnqueueOptions): { enqueue(...args: A): Promise<Task<Awaited<R>>> };
}

const DEFINE_OPTION_KEYS: readonly string[] = [...TASK_OPTION_KEYS, "isolation", "backoff", "retryOn"];
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
    throw new TypeError(`defineTask(${JSON.stringify(name)}): handler must be a function`);
  assertKnownKeys(`defineTask(${JSON.stringify(name)})`, options, DEFINE_OPTION_KEYS);
  const { isolation, backoff, retryOn, ...taskOptions } = options;
  validateIsolation(isolation, `defineTask(${JSON.stringify(name)})`);
  validateRetryPolicy({ backoff, retryOn }, `defineTask(${JSON.stringify(name)})`);
  prepareTask({ name, ...taskOptions }); // options are checked now, not at the first enqueue
  const enqueueWith =
    (extra: EnqueueOptions) =>
    (...args: A): Promise<Task<Awaited<R>>> => {
      const { client, ...rest } = extra;
      return (client ?? getDefaultClient()).createTask<Awaited<R>>(name, args, { ...taskOptions, ...rest }) as Promise<
        Task<Awaited<R>>
      >;
    };
  return Object.freeze({
    name,
    handler,
    options,
    enqueue: enqueueWith({}),
    using: (extra: EnqueueOptions) => {
      assertKnownKeys(`${JSON.stringify(name)}.using()`, extra, ENQUEUE_OPTION_KEYS);
      return { enqueue: enqueueWith(extra ?? {}) };
    },
  });
}

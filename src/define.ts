import { getDefaultClient, type SkiplockClient } from "./client.js";
import { validateTaskName } from "./config.js";
import { prepareTask, type Task, type TaskOptions } from "./task.js";
import { validateIsolation, type TaskDefinitionLike } from "./worker/registry.js";

export interface DefineOptions extends TaskOptions {
  /** Run this task in a worker thread terminated at its timeout, whatever the worker's default (needs tasksModule). */
  isolation?: "inline" | "thread";
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

/**
 * Names a handler and its default options. Register the result with a worker (or export it from a `--tasks`
 * module) and enqueue through it with checked argument types.
 */
export function defineTask<A extends unknown[], R>(
  name: string,
  handler: (...args: A) => R | Promise<R>,
  options: DefineOptions = {},
): TaskDefinition<A, R> {
  validateTaskName(name);
  if (typeof handler !== "function") throw new TypeError(`defineTask(${JSON.stringify(name)}): handler must be a function`);
  const { isolation, ...taskOptions } = options;
  validateIsolation(isolation, `defineTask(${JSON.stringify(name)})`);
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
    using: (extra: EnqueueOptions) => ({ enqueue: enqueueWith(extra) }),
  });
}

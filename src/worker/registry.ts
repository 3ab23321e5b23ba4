import { DEFAULT_QUEUE, validateQueueName, validateTaskName } from "../config.js";
import { InvalidOptionError } from "../errors.js";
import { validateRetryPolicy, type RetryPolicy } from "../retry-policy.js";
import { validateIsolation, type Isolation, type TaskDefinitionLike } from "../task.js";
import { isDefinition, loadTasksModule } from "./tasks-module.js";
import { ThreadPool } from "./thread-pool.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Handler = (...args: any[]) => unknown;

export type TaskEntry = Handler | TaskDefinitionLike;

/** `{ name: handler }`, `{ key: defineTask(…) }`, or an array of definitions. */
export type TaskMap = Record<string, TaskEntry> | readonly TaskDefinitionLike[];

export interface Registered {
  handler: Handler;
  /** Set for definitions made with `isolation: "thread"`. */
  isolation: Isolation | undefined;
  /** The queue a definition enqueues on by default (a worker claims it unless told its queues). */
  queue: string | undefined;
  /** A definition's own backoff and retryOn; null: the worker's default backoff, every failure retried. */
  policy: RetryPolicy | null;
}

/** The options of a definition a worker reads (a definition from another copy of skiplock is checked again). */
interface DefinitionOptions {
  isolation?: unknown;
  queue?: unknown;
  backoff?: unknown;
  retryOn?: unknown;
}

/**
 * Builds the name → handler table. A plain function is registered under its key; a definition under its own
 * name. Names are validated and must be unique.
 */
export function buildRegistry(tasks: TaskMap): Map<string, Registered> {
  const registry = new Map<string, Registered>();
  const add = (name: string, handler: Handler, options: DefinitionOptions | undefined) => {
    validateTaskName(name);
    if (registry.has(name)) throw new InvalidOptionError("tasks", `task ${JSON.stringify(name)} is registered twice`);
    const queue = options?.queue;
    registry.set(name, {
      handler,
      isolation: validateIsolation(options?.isolation, `task ${JSON.stringify(name)}`),
      queue: queue === undefined ? undefined : validateQueueName(queue),
      policy: options ? validateRetryPolicy(options, `task ${JSON.stringify(name)}`) : null,
    });
  };
  const entries: [string, unknown][] = Array.isArray(tasks)
    ? tasks.map((d, i) => [String(i), d])
    : Object.entries(tasks as Record<string, unknown>);
  for (const [key, entry] of entries) {
    if (isDefinition(entry)) add(entry.name, entry.handler, entry.options as DefinitionOptions | undefined);
    else if (typeof entry === "function" && !Array.isArray(tasks)) add(key, entry as Handler, undefined);
    else throw new InvalidOptionError("tasks", `${key} is neither a function nor a task made with defineTask`);
  }
  return registry;
}

/**
 * The handlers a worker runs: `tasks` as given, else the exports of its tasks module (loaded now); and a thread pool
 * when any of them runs isolated in a thread (which needs the module: each thread imports it).
 */
export async function loadHandlers(
  registry: Map<string, Registered>,
  moduleUrl: string | null,
  isolation: Isolation,
): Promise<{ registry: Map<string, Registered>; threads: ThreadPool | null }> {
  if (moduleUrl && registry.size === 0) registry = buildRegistry(await loadTasksModule(moduleUrl));
  const threaded = isolation === "thread" || [...registry.values()].some((r) => r.isolation === "thread");
  if (!threaded) return { registry, threads: null };
  if (!moduleUrl) {
    throw new InvalidOptionError("isolation", "thread isolation needs tasksModule: the module each thread imports");
  }
  return { registry, threads: new ThreadPool(moduleUrl) };
}

/** "default" and every queue a registered definition enqueues on: what a worker claims unless told its queues. */
export function queuesOf(registry: ReadonlyMap<string, Registered>): string[] {
  const queues = new Set([DEFAULT_QUEUE]);
  for (const r of registry.values()) if (r.queue !== undefined) queues.add(r.queue);
  return [...queues];
}

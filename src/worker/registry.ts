import { validateTaskName } from "../config.js";
import { InvalidOptionError } from "../errors.js";
import type { TaskOptions } from "../task.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Handler = (...args: any[]) => unknown;

/** What the worker needs of a task made with `defineTask`: its name and handler. */
export interface TaskDefinitionLike {
  readonly name: string;
  readonly handler: Handler;
  readonly options?: TaskOptions;
}

export type TaskEntry = Handler | TaskDefinitionLike;

/** `{ name: handler }`, `{ key: defineTask(…) }`, or an array of definitions. */
export type TaskMap = Record<string, TaskEntry> | readonly TaskDefinitionLike[];

export function isDefinition(value: unknown): value is TaskDefinitionLike {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as TaskDefinitionLike).name === "string" &&
    typeof (value as TaskDefinitionLike).handler === "function"
  );
}

/**
 * Builds the name → handler table. A plain function is registered under its key; a definition under its own
 * name. Names are validated and must be unique.
 */
export function buildRegistry(tasks: TaskMap): Map<string, Handler> {
  const registry = new Map<string, Handler>();
  const add = (name: string, handler: Handler) => {
    validateTaskName(name);
    if (registry.has(name)) throw new InvalidOptionError("tasks", `task ${JSON.stringify(name)} is registered twice`);
    registry.set(name, handler);
  };
  const entries: [string, unknown][] = Array.isArray(tasks)
    ? tasks.map((d, i) => [String(i), d])
    : Object.entries(tasks as Record<string, unknown>);
  for (const [key, entry] of entries) {
    if (isDefinition(entry)) add(entry.name, entry.handler);
    else if (typeof entry === "function" && !Array.isArray(tasks)) add(key, entry as Handler);
    else throw new InvalidOptionError("tasks", `${key} is neither a function nor a task made with defineTask`);
  }
  return registry;
}

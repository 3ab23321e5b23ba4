import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError } from "../errors.js";
import { isDefinition, type TaskEntry } from "../worker/registry.js";

/**
 * Loads the handlers a `--tasks` module exports. Each exported function is a task named after its export; each
 * export made with defineTask is registered under its own name; a default export that is a plain object
 * contributes its entries the same way. The module path comes from the operator, never from a task row.
 */
export async function loadTasksModule(path: string): Promise<Record<string, TaskEntry>> {
  const url = pathToFileURL(resolve(process.cwd(), path)).href;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`cannot load tasks module ${path}: ${(err as Error).message}`, { cause: err });
  }
  const entries: [string, unknown][] = [];
  for (const [key, value] of Object.entries(mod)) {
    if (key === "default" && value && typeof value === "object" && !isDefinition(value)) {
      entries.push(...Object.entries(value as Record<string, unknown>));
    } else if (key !== "default" || isDefinition(value)) {
      entries.push([key, value]);
    }
  }
  const tasks: Record<string, TaskEntry> = {};
  for (const [key, value] of entries) {
    if (isDefinition(value)) tasks[`definition:${value.name}`] = value;
    else if (typeof value === "function") tasks[key] = value as TaskEntry;
  }
  if (Object.keys(tasks).length === 0) {
    throw new ConfigError(`tasks module ${path} exports no task handlers (export functions or defineTask(...) results)`);
  }
  return tasks;
}

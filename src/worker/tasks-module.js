// @ts-check
// Plain JavaScript so that task threads (worker/task-thread.js) can load a tasks module the same way the CLI does.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** @typedef {import("../task.js").TaskDefinitionLike} TaskDefinitionLike */

/**
 * @param {unknown} value
 * @returns {value is TaskDefinitionLike}
 */
export function isDefinition(value) {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (/** @type {TaskDefinitionLike} */ (value).name) === "string" &&
    typeof (/** @type {TaskDefinitionLike} */ (value).handler) === "function"
  );
}

/** The URL a tasks module path (relative to the working directory) is imported from. */
export function tasksModuleUrl(/** @type {string} */ path) {
  return pathToFileURL(resolve(process.cwd(), path)).href;
}

/**
 * Loads the handlers a tasks module exports. Each exported function is a task named after its export; each export
 * made with defineTask is registered under its own name; a default export that is a plain object contributes its
 * entries the same way. The path comes from the operator, never from a task row.
 * @param {string} url a file: URL (see tasksModuleUrl)
 * @returns {Promise<Record<string, ((...args: any[]) => unknown) | TaskDefinitionLike>>} keyed so buildRegistry()
 *   registers each under its task name
 */
export async function loadTasksModule(url) {
  /** @type {Record<string, unknown>} */
  let mod;
  try {
    mod = await import(url);
  } catch (err) {
    const e = /** @type {Error} */ (err);
    throw Object.assign(new Error(`cannot load tasks module ${url}: ${e.message}`, { cause: err }), {
      code: "TASKS_MODULE",
    });
  }
  /** @type {[string, unknown][]} */
  const entries = [];
  for (const [key, value] of Object.entries(mod)) {
    if (key === "default" && value && typeof value === "object" && !isDefinition(value)) {
      entries.push(...Object.entries(/** @type {Record<string, unknown>} */ (value)));
    } else if (key !== "default" || isDefinition(value)) {
      entries.push([key, value]);
    }
  }
  /** @type {Record<string, ((...args: any[]) => unknown) | TaskDefinitionLike>} */
  const tasks = {};
  for (const [key, value] of entries) {
    if (isDefinition(value)) tasks[`definition:${value.name}`] = value;
    else if (typeof value === "function") tasks[key] = /** @type {(...args: any[]) => unknown} */ (value);
  }
  if (Object.keys(tasks).length === 0) {
    throw Object.assign(
      new Error(`tasks module ${url} exports no task handlers (export functions or defineTask(...) results)`),
      { code: "TASKS_MODULE" },
    );
  }
  return tasks;
}

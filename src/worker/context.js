// @ts-check
// Plain JavaScript so that task threads (worker/task-thread.js) load the same module as the main thread, from the
// sources or the build alike.
import { AsyncLocalStorage } from "node:async_hooks";

/**
 * What a running handler can know about its task.
 * @typedef {object} TaskContext
 * @property {string} id
 * @property {string} name
 * @property {string} queue
 * @property {number} attempt 1 for the first attempt, 2 for the first retry, …
 * @property {number} retryCount
 * @property {number} maxRetries
 * @property {AbortSignal} signal fires when the task times out, its worker shuts down or `cancelTask` cancels it;
 *   `signal.reason` says which (TaskTimeoutError, WorkerShutdownError, TaskCancelledError)
 * @property {string} workerId
 * @property {(fraction: number, message?: string) => Promise<void>} progress records the task's progress (fraction
 *   0..1): written at most about once a second, the last value before the outcome always. Resolves once written, or at
 *   once when coalesced into a later write; never rejects for a database error. A bad value throws a typed error.
 * @property {(patch: { [key: string]: unknown }) => Promise<void>} setMeta merges the patch's top-level keys into the
 *   task's `meta` (a JSON object), written like progress
 * @property {{ name: string, tick: Date } | undefined} schedule the schedule and tick that enqueued the task, if any
 */

/** @type {AsyncLocalStorage<TaskContext>} */
export const contextStorage = new AsyncLocalStorage();

/**
 * The context of the task whose handler is running, from anywhere inside it (including awaited calls). Handlers
 * written as `function` also receive it as `this`. Throws outside a task.
 * @returns {TaskContext}
 */
export function taskContext() {
  const ctx = contextStorage.getStore();
  if (!ctx) throw new Error("taskContext() called outside a running task");
  return ctx;
}

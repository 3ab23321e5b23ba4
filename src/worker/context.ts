import { AsyncLocalStorage } from "node:async_hooks";

/** What a running handler can know about its task. */
export interface TaskContext {
  id: string;
  name: string;
  queue: string;
  /** 1 for the first attempt, 2 for the first retry, … */
  attempt: number;
  retryCount: number;
  maxRetries: number;
  /** Fires when the task times out or its worker shuts down; `signal.reason` says which. */
  signal: AbortSignal;
  workerId: string;
}

export const contextStorage = new AsyncLocalStorage<TaskContext>();

/**
 * The context of the task whose handler is running, from anywhere inside it (including awaited calls). Handlers
 * written as `function` also receive it as `this`. Throws outside a task.
 */
export function taskContext(): TaskContext {
  const ctx = contextStorage.getStore();
  if (!ctx) throw new Error("taskContext() called outside a running task");
  return ctx;
}

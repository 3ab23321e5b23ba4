// Imports types only, so that the test modes implement TaskClient without loading the real client's Postgres and
// Redis code.
import type { WaitOptions } from "./client.js";
import type { JsonValue, Task, TaskOptions, TaskSpec } from "./task.js";

/** What `createTasks` takes beside its specs: the caller's open transaction, one for the whole batch. */
export type CreateTasksOptions = Pick<TaskOptions, "transaction">;

/**
 * What task handles (defineTask) and the module-level functions need of a client. SkiplockClient is the real one;
 * ImmediateClient and DummyClient (skiplock's test modes) stand in for it in users' tests, through
 * `setDefaultClient` or a handle's `using({ client })`.
 */
export interface TaskClient {
  createTask<R = JsonValue>(name: string, args?: readonly unknown[], options?: TaskOptions): Promise<Task<R>>;
  createTasks(specs: readonly TaskSpec[], options?: CreateTasksOptions): Promise<Task[]>;
  getTask<R = JsonValue>(id: string): Promise<Task<R> | null>;
  waitForCompletion<R = JsonValue>(id: string, options?: WaitOptions): Promise<Task<R> | null>;
  cancelTask(id: string): Promise<Task>;
}

const CLIENT_METHODS = ["createTask", "createTasks", "getTask", "waitForCompletion", "cancelTask"] as const;

/** Whether `value` has every method of a TaskClient (what setDefaultClient and `using({ client })` check). */
export function isTaskClient(value: unknown): value is TaskClient {
  if (value === null || typeof value !== "object") return false;
  return CLIENT_METHODS.every((m) => typeof (value as Record<string, unknown>)[m] === "function");
}

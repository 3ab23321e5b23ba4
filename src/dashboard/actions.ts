import type { SkiplockClient } from "../client.js";
import { TaskStateError } from "../errors.js";
import type { Task, TaskStatus } from "../task.js";
import type { TaskActionOptions } from "../task-expectation.js";

/** The task actions, one task at a time or in bulk. Each is one compare-and-set in the database (the client's). */
export const TASK_ACTIONS = ["retry", "cancel", "run-now", "delete"] as const;
export type TaskAction = (typeof TASK_ACTIONS)[number];

/** Most ids one bulk request acts on. */
export const MAX_BULK_IDS = 1000;

/**
 * The state the caller saw, as a request carries it: `expect` (a status) and `expectAttempt`, JSON values or the
 * text of a query or form field. Absent or empty: not expected. The client checks the values and names a wrong one.
 */
export function expectationFrom(status: unknown, attempt: unknown): TaskActionOptions {
  const o: TaskActionOptions = {};
  if (status !== undefined && status !== null && status !== "") o.expectStatus = status as TaskStatus;
  if (attempt !== undefined && attempt !== null && attempt !== "") {
    o.expectAttempt = (typeof attempt === "string" && /^\d{1,9}$/.test(attempt) ? Number(attempt) : attempt) as number;
  }
  return o;
}

/**
 * One action on one task, as the JSON API runs it: each is the client's compare-and-set, so a task that changed state
 * meanwhile (or is not in the state `expect` says the caller saw) is refused (TaskStateError) and left as it is.
 */
export async function runTaskAction(
  client: SkiplockClient,
  action: TaskAction,
  id: string,
  expect: TaskActionOptions = {},
): Promise<Task> {
  switch (action) {
    case "retry":
      return client.retryTask(id, expect);
    case "run-now":
      return client.runTaskNow(id, expect);
    case "delete":
      return client.deleteTask(id, expect);
    case "cancel": {
      // cancelTask returns a finished task unchanged; the page says it was not cancelled.
      const task = await client.cancelTask(id, expect);
      if (task.status === "COMPLETED" || task.status === "FAILED") {
        throw new TaskStateError(id, "cancel", task.status, ["PENDING", "PROGRESS"]);
      }
      return task;
    }
  }
}

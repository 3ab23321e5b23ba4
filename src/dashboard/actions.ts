import type { SkiplockClient } from "../client.js";
import { TaskStateError } from "../errors.js";
import type { Task } from "../task.js";

/** The task actions, one task at a time or in bulk. Each is one compare-and-set in the database (the client's). */
export const TASK_ACTIONS = ["retry", "cancel", "run-now", "delete"] as const;
export type TaskAction = (typeof TASK_ACTIONS)[number];

/** Most ids one bulk request acts on. */
export const MAX_BULK_IDS = 1000;

/**
 * One action on one task, as the JSON API runs it: each is the client's compare-and-set, so a task that changed state
 * meanwhile is refused (TaskStateError) and left as it is.
 */
export async function runTaskAction(client: SkiplockClient, action: TaskAction, id: string): Promise<Task> {
  switch (action) {
    case "retry":
      return client.retryTask(id);
    case "run-now":
      return client.runTaskNow(id);
    case "delete":
      return client.deleteTask(id);
    case "cancel": {
      // cancelTask returns a finished task unchanged; the page says it was not cancelled.
      const task = await client.cancelTask(id);
      if (task.status === "COMPLETED" || task.status === "FAILED") {
        throw new TaskStateError(id, "cancel", task.status, ["PENDING", "PROGRESS"]);
      }
      return task;
    }
  }
}

import type { Logger } from "../logger.js";
import type { RunningTask, WorkerEvents } from "./events.js";

/** The fields every log line about a task carries. */
export function taskFields(t: Pick<RunningTask, "id" | "name" | "queue" | "attempt">): Record<string, unknown> {
  return { task: t.id, name: t.name, queue: t.queue, attempt: t.attempt };
}

interface Emitter {
  on<K extends keyof WorkerEvents>(event: K, listener: (...args: WorkerEvents[K]) => void): unknown;
}

/**
 * One debug line per task state change, from the worker's task events. Attached only when the logger writes debug
 * lines: at info and above no listener exists, so no event is even built.
 */
export function logTaskEvents(worker: Emitter, logger: Logger): void {
  worker.on("task:started", ({ task }) => logger.debug("task started", taskFields(task)));
  worker.on("task:completed", ({ task, duration }) =>
    logger.debug("task completed", { ...taskFields(task), duration }),
  );
  worker.on("task:failed", ({ task, type, message, duration }) =>
    logger.debug("task failed", { ...taskFields(task), duration, error: `${type}: ${message}` }),
  );
  worker.on("task:retrying", ({ task, type, message, duration, runAt }) =>
    logger.debug("task retrying", { ...taskFields(task), duration, error: `${type}: ${message}`, runAt }),
  );
  worker.on("task:cancelled", ({ task, duration }) =>
    logger.debug("task cancelled", { ...taskFields(task), duration }),
  );
  worker.on("task:swept", ({ id, name, queue, attempt, outcome, workerId }) =>
    logger.debug("task swept", { task: id, name, queue, attempt, outcome, from: workerId }),
  );
}

import { performance } from "node:perf_hooks";
import { TaskTimeoutError, UnknownTaskError, WorkerShutdownError } from "../errors.js";
import type { ClaimedRow } from "../sql/claim.js";
import { contextStorage, type TaskContext } from "./context.js";
import { describeError, resultOutcome, type Outcome } from "./outcome.js";
import type { Handler } from "./registry.js";

/** setTimeout's longest delay; longer timeouts are clamped (they are days long and end the same way). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Execution {
  /** Settles once the attempt has an outcome; never rejects. */
  readonly outcome: Promise<Outcome>;
  /** Ask the task to stop because the worker is shutting down: its signal fires and the task is handed back. */
  release(): void;
}

/** A running task's context, less its signal (which each executor makes for itself). */
export function contextData(row: ClaimedRow, workerId: string, maxRetries: number): Omit<TaskContext, "signal"> {
  return {
    id: row.id,
    name: row.name,
    queue: row.queue,
    attempt: row.attempt,
    retryCount: row.retry_count,
    maxRetries: row.max_retries ?? maxRetries,
    workerId,
  };
}

/**
 * Runs one attempt in this thread. The handler gets the task's arguments as parameters, its context as `this` and
 * through taskContext(), and an AbortSignal that fires at the timeout or on shutdown. At the timeout the attempt
 * fails with TaskTimeoutError at once, whether or not the handler heeds the signal; a result that arrives later
 * is discarded. (A handler that blocks the event loop cannot be interrupted in this mode: see thread isolation.)
 */
export function executeInline(row: ClaimedRow, handler: Handler | undefined, workerId: string, maxRetries: number): Execution {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  if (!handler) {
    const e = new UnknownTaskError(row.name);
    return {
      outcome: Promise.resolve({ kind: "failed", error: `${e.name}: ${e.message}`, final: true, duration: 0 }),
      release() {},
    };
  }
  const controller = new AbortController();
  const ctx: TaskContext = { ...contextData(row, workerId, maxRetries), signal: controller.signal };
  let onAbort!: (reason: unknown) => void;
  const aborted = new Promise<never>((_, reject) => (onAbort = reject));
  aborted.catch(() => {}); // observed through the race below; an abort after the race settled is not an error
  controller.signal.addEventListener("abort", () => onAbort(controller.signal.reason), { once: true });
  const timer = setTimeout(
    () => controller.abort(new TaskTimeoutError(row.timeout)),
    Math.min(row.timeout * 1000, MAX_TIMER_MS),
  );

  const run = async (): Promise<Outcome> => {
    try {
      const value = await Promise.race([
        contextStorage.run(ctx, () => Promise.resolve().then(() => handler.apply(ctx, row.args))),
        aborted,
      ]);
      return resultOutcome(value, seconds());
    } catch (err) {
      if (controller.signal.aborted && controller.signal.reason instanceof WorkerShutdownError) return { kind: "released" };
      return { kind: "failed", error: describeError(err), final: false, duration: seconds() };
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    outcome: run(),
    release: () => controller.abort(new WorkerShutdownError()),
  };
}

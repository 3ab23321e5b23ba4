import { performance } from "node:perf_hooks";
import { TaskTimeoutError, UnknownTaskError, WorkerShutdownError } from "../errors.js";
import type { ClaimedRow } from "../sql/claim.js";
import { contextStorage, type TaskContext } from "./context.js";
import { describeError, resultOutcome, type Outcome } from "./outcome.js";
import type { Handler } from "./registry.js";

/** setTimeout's longest delay; longer timeouts are clamped (they are days long and end the same way). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

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
 * A running task's context. Its AbortController is made only if the handler asks for `signal` (most never do,
 * and one per task is measurable at thousands of tasks a second); a signal asked for after the task was
 * interrupted comes back already aborted.
 */
class InlineContext implements TaskContext {
  readonly id: string;
  readonly name: string;
  readonly queue: string;
  readonly attempt: number;
  readonly retryCount: number;
  readonly maxRetries: number;
  readonly workerId: string;
  #controller: AbortController | null = null;
  #reason: Error | null = null;

  constructor(data: Omit<TaskContext, "signal">) {
    this.id = data.id;
    this.name = data.name;
    this.queue = data.queue;
    this.attempt = data.attempt;
    this.retryCount = data.retryCount;
    this.maxRetries = data.maxRetries;
    this.workerId = data.workerId;
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#reason) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  abort(reason: Error): void {
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
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
  const ctx = new InlineContext(contextData(row, workerId, maxRetries));
  let settled = false;
  let resolve!: (o: Outcome) => void;
  const outcome = new Promise<Outcome>((r) => (resolve = r));
  const settle = (o: Outcome) => {
    if (settled) return; // the first outcome wins; a late result or error is discarded
    settled = true;
    clearTimeout(timer);
    resolve(o);
  };
  const failed = (err: unknown, duration = seconds()) =>
    settle({ kind: "failed", error: describeError(err), final: false, duration });
  const interrupt = (reason: Error) => {
    if (settled) return;
    ctx.abort(reason);
    if (reason instanceof WorkerShutdownError) settle({ kind: "released" });
    // A timer may fire a fraction of a millisecond early by the performance clock: a timed-out attempt ran its timeout.
    else if (reason instanceof TaskTimeoutError) failed(reason, Math.max(seconds(), row.timeout));
    else failed(reason);
  };
  const timer = setTimeout(() => interrupt(new TaskTimeoutError(row.timeout)), Math.min(row.timeout * 1000, MAX_TIMER_MS));

  try {
    const value = contextStorage.run(ctx, () => handler.apply(ctx, row.args));
    if (isThenable(value)) {
      value.then(
        (v) => settle(resultOutcome(v, seconds())),
        (err: unknown) => failed(err),
      );
    } else {
      settle(resultOutcome(value, seconds()));
    }
  } catch (err) {
    failed(err);
  }
  return { outcome, release: () => interrupt(new WorkerShutdownError()) };
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === "object" || typeof v === "function") && typeof (v as PromiseLike<unknown>).then === "function";
}

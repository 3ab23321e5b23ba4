import { HandlerError, TaskCancelledError, TaskTimeoutError, UnknownTaskError } from "../errors.js";
import { checkMetaPatch, checkProgress } from "../report-checks.js";
import type { Task } from "../task.js";
import { contextStorage, type TaskContext } from "../worker/context.js";
import { MAX_TIMER_MS } from "../worker/deadlines.js";
import { errorLine } from "../worker/executor.js";
import { describeError, resultOutcome } from "../worker/outcome.js";
import type { Handler } from "../worker/registry.js";

/** An attempt running in a test mode, as cancelTask sees it. */
export interface InlineAttempt {
  /** Fires the handler's signal with a TaskCancelledError; any failure from then on ends the task CANCELLED. */
  cancel(): void;
}

/**
 * A test mode's task context: what a worker's gives, with `progress` and `setMeta` recorded straight on the task
 * (there is no row to write them to).
 */
class RecordingContext implements TaskContext, InlineAttempt {
  readonly id: string;
  readonly name: string;
  readonly queue: string;
  readonly attempt: number;
  readonly retryCount: number;
  readonly maxRetries: number;
  readonly workerId: string;
  readonly schedule: TaskContext["schedule"];
  readonly #controller = new AbortController();
  readonly #task: Task<unknown>;
  /** Set once cancelTask asked this attempt to stop. */
  cancelled: TaskCancelledError | null = null;

  constructor(task: Task<unknown>, workerId: string) {
    this.id = task.id;
    this.name = task.name;
    this.queue = task.queue;
    this.attempt = task.attempt;
    this.retryCount = task.retryCount;
    this.maxRetries = task.maxRetries ?? 0;
    this.workerId = workerId;
    this.schedule = task.schedule ?? undefined;
    this.#task = task;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  abort(reason: Error): void {
    this.#controller.abort(reason);
  }

  cancel(): void {
    if (this.cancelled) return;
    this.abort((this.cancelled = new TaskCancelledError()));
  }

  // Fields, not methods, so that `const { progress, setMeta } = taskContext()` works as it does in a worker.

  /** Records the progress on the task: `fraction` 0..1 and an optional message, checked as a worker checks them. */
  readonly progress = (fraction: number, message?: string): Promise<void> => {
    checkProgress(fraction, message);
    this.#task.progress = { fraction, message: message ?? null, at: new Date() };
    return Promise.resolve();
  };

  /** Merges `patch` (a JSON object) into the task's meta, key by key, checked as a worker checks it. */
  readonly setMeta = (patch: { [key: string]: unknown }): Promise<void> => {
    this.#task.meta = { ...this.#task.meta, ...checkMetaPatch(patch) };
    return Promise.resolve();
  };
}

/**
 * Runs one attempt of `task` (PENDING, changed in place) as a worker would: its arguments through JSON, its context
 * as `this` and through taskContext(), its signal fired at the timeout. The task ends COMPLETED with the result as
 * JSON returns it, or FAILED with the error's text; the error itself is returned too, for `propagateErrors`. While
 * it runs the attempt is in `running`, under the task's id: cancelled there, a failure ends it CANCELLED (and is
 * not returned: the task did not fail), a success still COMPLETED, as with a worker. There is no cancelGrace: a
 * handler that ignores its signal runs on until it settles or its timeout.
 */
export async function runInline(
  task: Task<unknown>,
  handler: Handler | undefined,
  workerId: string,
  running: Map<string, InlineAttempt>,
): Promise<{ error: unknown } | null> {
  const started = new Date();
  Object.assign(task, {
    status: "PROGRESS",
    attempt: task.attempt + 1,
    startedAt: started,
    heartbeatAt: started,
    updatedAt: started,
    workerId,
  });
  let error: unknown;
  let value: unknown;
  let failed = false;
  const ctx = new RecordingContext(task, workerId);
  running.set(task.id, ctx);
  try {
    if (!handler) throw new UnknownTaskError(task.name);
    value = await callWithTimeout(task, handler, ctx);
  } catch (err) {
    failed = true;
    error = err;
  } finally {
    running.delete(task.id);
  }
  const finished = new Date();
  const duration = (finished.getTime() - started.getTime()) / 1000;
  if (failed && ctx.cancelled) {
    // As the worker writes a cancelled attempt: the request's reason as the error, no result, not in `errors`.
    const error = errorLine(ctx.cancelled);
    Object.assign(task, { status: "CANCELLED", error, result: null, finishedAt: finished, updatedAt: finished });
    task.duration = duration;
    return null;
  }
  if (!failed) {
    const outcome = resultOutcome(value, duration);
    if (outcome.kind === "completed") {
      const result: unknown = JSON.parse(outcome.resultJson);
      Object.assign(task, { status: "COMPLETED", result, finishedAt: finished, updatedAt: finished, duration });
      return null;
    }
    error = new HandlerError(outcome.kind === "failed" ? outcome.error.replace(/^HandlerError: /, "") : "");
  }
  const e = error instanceof Error ? error : null;
  task.errors = [
    ...task.errors,
    {
      type: e ? e.name : "HandlerError",
      message: e ? e.message : describeError(error),
      stack: e?.stack ?? null,
      attempt: task.attempt,
      workerId,
      at: finished,
    },
  ];
  Object.assign(task, { status: "FAILED", error: describeError(error), finishedAt: finished, updatedAt: finished });
  task.duration = duration;
  return { error };
}

/** The handler's value, or its error, or a TaskTimeoutError once the task's timeout passes (its signal fires). */
function callWithTimeout(task: Task<unknown>, handler: Handler, ctx: RecordingContext): Promise<unknown> {
  const args = structuredClone(task.args); // the handler's own copy, as a worker's comes from its own read
  let timer: NodeJS.Timeout | undefined;
  return new Promise((resolve, reject) => {
    const ms = task.timeout * 1000;
    if (ms <= MAX_TIMER_MS) {
      timer = setTimeout(() => {
        const e = new TaskTimeoutError(task.timeout);
        ctx.abort(e);
        reject(e);
      }, ms).unref();
    }
    try {
      Promise.resolve(contextStorage.run(ctx, () => handler.apply(ctx, args))).then(resolve, reject);
    } catch (err) {
      reject(err);
    }
  }).finally(() => clearTimeout(timer));
}

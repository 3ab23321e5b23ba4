import { performance } from "node:perf_hooks";
import { TaskCancelledError, TaskTimeoutError, UnknownTaskError, WorkerShutdownError } from "../errors.js";
import type { ClaimedRow } from "../sql/claim.js";
import { contextStorage, type TaskContext } from "./context.js";
import { Deadlines, type Expiring } from "./deadlines.js";
import { argsProblem, describeError, resultOutcome, type Outcome } from "./outcome.js";
import type { Handler } from "./registry.js";
import { checkMetaPatch, checkProgress } from "../report-checks.js";
import type { ReportWriter } from "./reports.js";

/** A running attempt, as the worker tracks it. */
export interface Execution {
  readonly row: ClaimedRow;
  /** Where the worker keeps it while it runs (see Worker's running table); -1 when not running. */
  slot: number;
  /** Ask the task to stop because the worker is shutting down: its signal fires and the task is handed back. */
  release(): void;
  /**
   * Ask the task to stop because cancelTask asked for it: its signal fires with a TaskCancelledError; the attempt ends
   * CANCELLED when the handler settles (COMPLETED if it returns successfully), or after cancelGrace if it does not.
   */
  cancel(): void;
}

/** What every attempt of a worker shares beyond its outcome listener. */
export interface AttemptSupport {
  /** Writes taskContext().progress and setMeta. */
  reports: ReportWriter;
  /** Seconds a cancelled handler may take to settle before it is abandoned (and its thread terminated). */
  cancelGrace: number;
}

/**
 * Called once per attempt with its outcome. Inline attempts that finish synchronously call it from within
 * `start()`, so the caller must be ready for that.
 */
export type OutcomeListener = (exec: Execution, outcome: Outcome) => void;

/** A running task's context, less its signal and methods (which each executor makes for itself). */
export function contextData(
  row: ClaimedRow,
  workerId: string,
  maxRetries: number,
): Omit<TaskContext, "signal" | "progress" | "setMeta"> {
  return {
    id: row.id,
    name: row.name,
    queue: row.queue,
    attempt: row.attempt,
    retryCount: row.retry_count,
    maxRetries: row.max_retries ?? maxRetries,
    workerId,
    schedule: scheduleOf(row),
  };
}

/** The schedule tick that enqueued the task, for its context (scheduled tasks only: most rows carry nulls). */
function scheduleOf(row: ClaimedRow): TaskContext["schedule"] {
  return row.schedule_name === null ? undefined : { name: row.schedule_name, tick: row.schedule_tick! };
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
  readonly #row: ClaimedRow;
  readonly #reports: ReportWriter;
  readonly schedule: TaskContext["schedule"];
  #controller: AbortController | null = null;
  #reason: Error | null = null;
  #progress: TaskContext["progress"] | null = null;
  #setMeta: TaskContext["setMeta"] | null = null;
  /** The handler reported progress or meta: its last report is flushed before the outcome. */
  reported = false;
  /** The attempt has its outcome: later reports change nothing. */
  closed = false;

  constructor(row: ClaimedRow, workerId: string, maxRetries: number, reports: ReportWriter) {
    this.id = row.id;
    this.name = row.name;
    this.queue = row.queue;
    this.attempt = row.attempt;
    this.retryCount = row.retry_count;
    this.maxRetries = row.max_retries ?? maxRetries;
    this.workerId = workerId;
    this.#row = row;
    this.#reports = reports;
    this.schedule = scheduleOf(row);
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#reason) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /**
   * progress and setMeta are made on first use, bound, so `const { progress } = taskContext()` works as it does for a
   * threaded task, at no cost to handlers that never ask for them.
   */
  get progress(): TaskContext["progress"] {
    return (this.#progress ??= (fraction, message) => {
      const json = checkProgress(fraction, message);
      if (this.closed) return Promise.resolve();
      this.reported = true;
      return this.#reports.report(this.#row, json, null);
    });
  }

  get setMeta(): TaskContext["setMeta"] {
    return (this.#setMeta ??= (patch) => {
      const meta = checkMetaPatch(patch);
      if (this.closed) return Promise.resolve();
      this.reported = true;
      return this.#reports.report(this.#row, null, meta);
    });
  }

  abort(reason: Error): void {
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

/** Runs attempts on this thread: made once per worker, it holds what every attempt shares. */
export class InlineRunner {
  readonly workerId: string;
  readonly maxRetries: number;
  readonly listener: OutcomeListener;
  readonly support: AttemptSupport;
  readonly deadlines = new Deadlines();

  constructor(workerId: string, maxRetries: number, listener: OutcomeListener, support: AttemptSupport) {
    this.workerId = workerId;
    this.maxRetries = maxRetries;
    this.listener = listener;
    this.support = support;
  }

  /**
   * Prepares one attempt; `start()` runs it. A task with no registered handler, or whose args are not an array,
   * fails at once, for good.
   */
  prepare(row: ClaimedRow, handler: Handler | undefined): Execution & { start(): void } {
    if (!handler) {
      const e = new UnknownTaskError(row.name);
      return this.#refuse(row, { kind: "failed", error: `${e.name}: ${e.message}`, final: true, duration: 0 });
    }
    const refused = argsProblem(row.args);
    if (refused) return this.#refuse(row, refused);
    const ctx = new InlineContext(row, this.workerId, this.maxRetries, this.support.reports);
    return new InlineExecution(row, handler, ctx, this);
  }

  /** An attempt that ends with `outcome` as soon as it starts, without running anything. */
  #refuse(row: ClaimedRow, outcome: Outcome): Execution & { start(): void } {
    const listener = this.listener;
    const exec = { row, slot: -1, start: () => listener(exec, outcome), release() {}, cancel() {} };
    return exec;
  }

  close(): void {
    this.deadlines.close();
  }
}

/**
 * One attempt run on this thread. The handler gets the task's arguments as parameters, its context as `this` and
 * through taskContext(), and an AbortSignal that fires at the timeout, on shutdown or on cancel. At the timeout the
 * attempt fails with TaskTimeoutError at once, whether or not the handler heeds the signal; a result that arrives
 * later is discarded. A cancelled attempt ends when the handler settles, or after cancelGrace: abandoned, its slot
 * freed. (A handler that blocks the event loop cannot be interrupted in this mode: see thread isolation.)
 *
 * This is the per-task hot path of a worker draining short tasks, so an attempt is one object and its context,
 * with no promise, closure or timer of its own: at tens of thousands of tasks a second, a promise chain and a few
 * closures per attempt (and the garbage collection they caused) took half of the worker's CPU.
 */
class InlineExecution implements Execution, Expiring {
  readonly row: ClaimedRow;
  slot = -1;
  readonly #handler: Handler;
  readonly #ctx: InlineContext;
  readonly #runner: InlineRunner;
  readonly #timeoutMs: number;
  #started = 0;
  #settled = false;
  /** cancelTask asked for this attempt to stop: any failure from now on ends it CANCELLED. */
  #cancelled: TaskCancelledError | null = null;

  constructor(row: ClaimedRow, handler: Handler, ctx: InlineContext, runner: InlineRunner) {
    this.row = row;
    this.#handler = handler;
    this.#ctx = ctx;
    this.#runner = runner;
    this.#timeoutMs = row.timeout * 1000;
  }

  get done(): boolean {
    return this.#settled;
  }

  start(): void {
    this.#started = performance.now();
    this.#runner.deadlines.add(this.#timeoutMs, this);
    let value: unknown;
    try {
      value = contextStorage.run(this.#ctx, InlineExecution.#call, this);
    } catch (err) {
      return this.#failed(err);
    }
    if (isThenable(value)) {
      value.then(
        (v) => this.#result(v),
        (err: unknown) => this.#failed(err),
      );
    } else {
      this.#result(value);
    }
  }

  release(): void {
    this.#interrupt(new WorkerShutdownError());
  }

  expire(): void {
    this.#interrupt(new TaskTimeoutError(this.row.timeout));
  }

  cancel(): void {
    if (this.#settled || this.#cancelled) return;
    const reason = (this.#cancelled = new TaskCancelledError());
    this.#ctx.abort(reason);
    // Rare, so a timer of its own: a handler that ignores the signal is abandoned after the grace period.
    const grace = this.#runner.support.cancelGrace;
    setTimeout(() => {
      if (this.#settled) return;
      const e = new TaskCancelledError(`the task was cancelled and abandoned after ignoring its signal for ${grace} s`);
      this.#settle({ kind: "cancelled", error: errorLine(e), duration: this.#seconds() });
    }, grace * 1000).unref();
  }

  // Static, with the attempt passed along, so that starting an attempt makes no closure.
  static #call(e: InlineExecution): unknown {
    return e.#handler.apply(e.#ctx, e.row.args);
  }

  #result(value: unknown): void {
    if (!this.#settled) this.#settle(resultOutcome(value, this.#seconds()));
  }

  #seconds(): number {
    return (performance.now() - this.#started) / 1000;
  }

  #failed(err: unknown, duration = this.#seconds()): void {
    if (this.#settled) return;
    // Once cancelled, whatever the handler failed with (the signal's reason, or its own error) ends it CANCELLED.
    if (this.#cancelled) this.#settle({ kind: "cancelled", error: errorLine(this.#cancelled), duration });
    else this.#settle({ kind: "failed", error: describeError(err), final: false, duration, thrown: err });
  }

  #interrupt(reason: Error): void {
    if (this.#settled) return;
    this.#ctx.abort(reason);
    // A cancelled task is not handed back to run again: it ends CANCELLED.
    if (reason instanceof WorkerShutdownError && !this.#cancelled) this.#settle({ kind: "released" });
    // A timer may fire a fraction of a millisecond early by the performance clock: a timed-out attempt ran its timeout.
    else if (reason instanceof TaskTimeoutError) this.#failed(reason, Math.max(this.#seconds(), this.row.timeout));
    else this.#failed(reason);
  }

  /**
   * The first outcome wins; a late result or error is discarded. The handler's last progress or meta, if it reported
   * any, is written first, so the outcome never overtakes it (the slot stays taken meanwhile).
   */
  #settle(outcome: Outcome): void {
    this.#settled = true;
    this.#runner.deadlines.finished(this.#timeoutMs);
    this.#ctx.closed = true;
    const flushing = this.#ctx.reported ? this.#runner.support.reports.flush(this.row) : null;
    if (flushing) void flushing.then(() => this.#runner.listener(this, outcome));
    else this.#runner.listener(this, outcome);
  }
}

/** An error of ours as stored: its name and message (its stack would only show the worker's internals). */
export function errorLine(e: Error): string {
  return `${e.name}: ${e.message}`;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    v !== null &&
    (typeof v === "object" || typeof v === "function") &&
    typeof (v as PromiseLike<unknown>).then === "function"
  );
}

import type { Logger } from "../logger.js";
import { backoffSeconds, isPermanentError, type RetryPolicy } from "../retry-policy.js";
import type { ClaimedRow } from "../sql/claim.js";
import type { Isolation } from "../task.js";
import type { Registered } from "./registry.js";
import type { Completer } from "./completer.js";
import type { Listening, Signal } from "./events.js";
import { TaskCancelledError } from "../errors.js";
import { contextData, errorLine, InlineRunner, type AttemptSupport, type Execution } from "./executor.js";
import { runningTask } from "./running-task.js";
import { taskFields } from "./task-log.js";
import type { Outcome } from "./outcome.js";
import type { Slots } from "./slots.js";
import type { ThreadPool } from "./thread-pool.js";

export interface AttemptsOptions {
  slots: Slots;
  workerId: string;
  /** The worker's default retries, for the task context of rows claimed before a worker filled them in. */
  maxRetries: number;
  isolation: Isolation;
  registry: () => ReadonlyMap<string, Registered>;
  threads: () => ThreadPool | null;
  completer: Completer;
  /** Progress and meta writes, and the cancel grace, that every attempt shares. */
  support: AttemptSupport;
  /** Records a row's start before its handler runs; resolves to whether the lease was still held. */
  recordStart: (row: ClaimedRow) => Promise<boolean>;
  /** Whether new attempts may start (false once the worker is stopping). */
  accepting: () => boolean;
  /** A slot freed after `ms` of work (null: nothing ran to completion in it). */
  slotFreed: (ms: number | null) => void;
  /** Seconds stop() lets running attempts finish before handing them back. */
  shutdownTimeout: number;
  logger: Logger;
  signal: Signal;
  listening: Listening;
  /** Reports a fault outside any one task's outcome (a retry policy that threw) as worker:error. */
  report: (error: Error, during: string, task?: Record<string, unknown>) => void;
}

/**
 * Runs claimed rows' attempts in the worker's slots, inline or in a thread, and hands each outcome to the
 * completer. A row's start is recorded with the next outcome write, not awaited (docs/architecture.md, "Prefetch"),
 * except for a task a lost worker already gave back unstarted: it may be what kills its workers, so its start is
 * recorded before its handler runs, and a crash it causes is charged.
 */
export class Attempts {
  readonly #o: AttemptsOptions;
  readonly #inline: InlineRunner;
  #drained: (() => void) | null = null;
  /** Prefetched attempts (id to attempt) whose cancel was requested before they started. */
  readonly #cancelAsked = new Map<string, number>();

  constructor(options: AttemptsOptions) {
    this.#o = options;
    this.#inline = new InlineRunner(options.workerId, options.maxRetries, this.#finished, options.support);
  }

  /** Starts a claimed row's attempt in a free slot. */
  begin(row: ClaimedRow): void {
    if (this.#cancelAsked.size > 0 && this.#cancelAsked.get(row.id) === row.attempt) return this.#cancelUnstarted(row);
    if (row.attempt - 1 > row.retry_count) return this.#startRecorded(row);
    this.#run(row);
    this.#o.completer.started(row);
  }

  start(): void {}

  /** A prefetched attempt whose cancel was requested before it started: it ends CANCELLED instead of running. */
  cancelBeforeStart(id: string, attempt: number): void {
    this.#cancelAsked.set(id, attempt);
  }

  #cancelUnstarted(row: ClaimedRow): void {
    this.#cancelAsked.delete(row.id);
    const e = new TaskCancelledError("the task was cancelled before it started");
    this.#o.completer.cancel({
      id: row.id,
      attempt: row.attempt,
      error: errorLine(e),
      duration: 0,
      task: runningTask(row, this.#o.workerId, this.#o.maxRetries),
    });
    this.#slotFreed(null);
  }

  /** Lets running attempts finish for up to shutdownTimeout, then hands the rest back (their signals fire). */
  async stop(): Promise<void> {
    const { slots, logger } = this.#o;
    if (slots.count > 0) {
      const timeoutMs = this.#o.shutdownTimeout * 1000;
      logger.info("waiting for running tasks", { running: slots.count, timeoutSeconds: timeoutMs / 1000 });
      const drained = new Promise<void>((resolve) => (this.#drained = resolve));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([drained, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
      if (slots.count > 0) {
        logger.warn("shutdown timeout: handing unfinished tasks back to the queue", {
          tasks: slots.all().map((e) => e.row.id),
        });
        for (const exec of slots.all()) exec.release();
        // Inline attempts report "released" at once; threaded ones on the next turn.
        await drained;
      }
    }
    this.#inline.close();
  }

  /** A slot freed: the worker may start another; the last one frees a stop() waiting for them. */
  #slotFreed(ms: number | null): void {
    this.#o.slotFreed(ms);
    if (this.#o.slots.count === 0) this.#drained?.();
  }

  #startRecorded(row: ClaimedRow): void {
    const { slots, completer } = this.#o;
    let released = false;
    // Holds a slot while the start is recorded, so the worker never runs more than its concurrency.
    const pending: Execution = { row, slot: -1, release: () => void (released = true), cancel() {} };
    slots.add(pending);
    const handBack = () => completer.release({ id: row.id, attempt: row.attempt, started: false });
    this.#o.recordStart(row).then(
      (held) => {
        slots.remove(pending);
        if (held && !released && this.#o.accepting()) return this.#run(row);
        if (held) handBack();
        this.#slotFreed(null);
      },
      (err: Error) => {
        slots.remove(pending);
        this.#o.logger.warn("could not record a task's start; handing it back", {
          ...taskFields(row),
          error: err.message,
        });
        handBack();
        this.#slotFreed(null);
      },
    );
  }

  #run(row: ClaimedRow): void {
    const reg = this.#o.registry().get(row.name);
    if (this.#o.listening("task:started")) this.#o.signal("task:started", { task: runningTask(row, this.#o.workerId) });
    const threads = this.#o.threads();
    if (reg && threads && (reg.isolation ?? this.#o.isolation) === "thread") {
      const ctx = contextData(row, this.#o.workerId, this.#o.maxRetries);
      this.#o.slots.add(threads.run(row, ctx, this.#finished, this.#o.support));
    } else {
      // Registered before it starts: a synchronous handler reports its outcome from within start().
      const exec = this.#inline.prepare(row, reg?.handler);
      this.#o.slots.add(exec);
      exec.start();
    }
  }

  /** An attempt ended: free its slot and hand the outcome to the completer. */
  readonly #finished = (exec: Execution, outcome: Outcome): void => {
    const { row } = exec;
    if (!this.#o.slots.remove(exec)) return; // reported twice: ignore
    const completer = this.#o.completer;
    switch (outcome.kind) {
      case "completed":
        completer.complete({
          id: row.id,
          attempt: row.attempt,
          resultJson: outcome.resultJson,
          duration: outcome.duration,
          row,
        });
        break;
      case "failed":
        this.#o.logger.warn("task attempt failed", {
          ...taskFields(row),
          error: outcome.error.split("\n", 1)[0],
        });
        this.#failed(row, outcome);
        break;
      case "released":
        completer.release({ id: row.id, attempt: row.attempt, started: true });
        break;
      case "cancelled":
        completer.cancel({
          id: row.id,
          attempt: row.attempt,
          error: outcome.error,
          duration: outcome.duration,
          task: runningTask(row, this.#o.workerId, this.#o.maxRetries),
        });
        break;
    }
    this.#slotFreed(outcome.kind === "released" ? null : outcome.duration * 1000);
  };

  /**
   * A failed attempt, judged by its task's retry policy: final for a PermanentError or when retryOn returns false
   * (a task thread judged its handler's errors itself), and otherwise retried after the policy's backoff (null: the
   * worker's default, decided in SQL). A policy that throws is reported and leaves the failure retry-worthy.
   */
  #failed(row: ClaimedRow, outcome: Extract<Outcome, { kind: "failed" }>): void {
    let { final, type, message } = outcome;
    let delay: number | null = null;
    const judge = "thrown" in outcome;
    const thrown = outcome.thrown;
    if (judge && thrown instanceof Error) ({ name: type, message } = thrown);
    if (outcome.policyError !== undefined) this.#policyFailed(row, "retryOn", new Error(outcome.policyError));
    if (!final) {
      const policy: RetryPolicy | null | undefined = this.#o.registry().get(row.name)?.policy;
      if (judge && isPermanentError(thrown)) final = true;
      else if (judge && policy?.retryOn) {
        try {
          final = policy.retryOn(thrown) === false;
        } catch (err) {
          this.#policyFailed(row, "retryOn", err);
        }
      }
      if (!final && policy?.backoff) {
        try {
          delay = backoffSeconds(policy.backoff, row.retry_count + 1);
        } catch (err) {
          this.#policyFailed(row, "backoff", err);
        }
      }
    }
    this.#o.completer.fail({
      id: row.id,
      attempt: row.attempt,
      error: outcome.error,
      type,
      message,
      duration: outcome.duration,
      final,
      delay,
      row,
    });
  }

  #policyFailed(row: ClaimedRow, what: "retryOn" | "backoff", err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.#o.report(error, `${what} of task ${row.name} (${row.id})`, taskFields(row));
  }
}

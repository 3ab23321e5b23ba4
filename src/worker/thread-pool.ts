import { performance } from "node:perf_hooks";
import { Worker as Thread } from "node:worker_threads";
import { HandlerError, TaskCancelledError, TaskTimeoutError, WorkerShutdownError } from "../errors.js";
import type { ClaimedRow } from "../sql/claim.js";
import { MAX_TIMER_MS } from "./deadlines.js";
import { errorLine, type AttemptSupport, type Execution, type OutcomeListener } from "./executor.js";
import { argsProblem, describeError, resultOutcome, type Outcome } from "./outcome.js";
import { checkMetaPatch, checkProgress } from "../report-checks.js";

interface Slot {
  thread: Thread;
  /** Resolves when the thread has loaded the tasks module. */
  ready: Promise<void>;
}

type DoneMessage =
  | { type: "done"; runId: number; ok: true; value: unknown }
  | {
      type: "done";
      runId: number;
      ok: false;
      error?: unknown;
      notJson?: string;
      /** The thread's verdict under the task's retry policy (task-thread.js), and the error's name and message. */
      final?: boolean;
      errorType?: string;
      errorMessage?: string;
      policyError?: string;
    };

/** A handler's taskContext().progress or setMeta, from its thread; answered with a "reported" message. */
interface ReportMessage {
  type: "report";
  runId: number;
  seq: number;
  kind: "progress" | "meta";
  fraction?: unknown;
  message?: unknown;
  patch?: unknown;
}

/** An error as it crosses to a thread: structured cloning keeps neither the class nor `code` of our errors. */
function errorData(e: Error): { name: string; message: string; code?: string } {
  return { name: e.name, message: e.message, code: (e as { code?: string }).code };
}

/**
 * Runs attempts in worker threads, one attempt per thread at a time. Threads are reused while their tasks finish
 * normally; a thread whose task times out, that is released at shutdown, or whose cancelled task outlives
 * cancelGrace, is terminated (ending even a handler that never yields) and a fresh one takes its place on the next
 * run. A thread that dies (`process.exit()` inside a handler ends only its thread) fails the attempt it was running.
 * A task's progress and setMeta reach the main thread as messages, checked and written here like an inline task's.
 */
export class ThreadPool {
  readonly #moduleUrl: string;
  readonly #idle: Slot[] = [];
  readonly #all = new Set<Thread>();
  #nextRunId = 1;
  #closed = false;

  constructor(moduleUrl: string) {
    this.#moduleUrl = moduleUrl;
  }

  #spawn(): Slot {
    const thread = new Thread(new URL("./task-thread.js", import.meta.url), {
      workerData: { moduleUrl: this.#moduleUrl },
    });
    this.#all.add(thread);
    thread.on("exit", () => this.#all.delete(thread));
    const ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: { type: string }) => {
        if (m.type !== "ready") return;
        thread.off("message", onMessage);
        thread.off("error", reject);
        resolve();
      };
      thread.on("message", onMessage);
      thread.once("error", reject);
    });
    ready.catch(() => {});
    return { thread, ready };
  }

  #retire(slot: Slot): void {
    this.#all.delete(slot.thread);
    void slot.thread.terminate();
  }

  /** Starts the attempt; `listener` hears its outcome. */
  run(row: ClaimedRow, ctx: Record<string, unknown>, listener: OutcomeListener, support: AttemptSupport): Execution {
    const refused = argsProblem(row.args);
    if (refused) {
      const exec: Execution = { row, slot: -1, release() {}, cancel() {} };
      // Heard after run() returns, as every threaded outcome is: the caller tracks the attempt first.
      void Promise.resolve().then(() => listener(exec, refused));
      return exec;
    }
    const slot = this.#idle.pop() ?? this.#spawn();
    const runId = this.#nextRunId++;
    let started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    let cancelled: TaskCancelledError | null = null;
    const failed = (error: string, final = false): Extract<Outcome, { kind: "failed" }> => ({
      kind: "failed",
      error,
      final,
      duration: seconds(),
    });
    // An error raised here rather than by the handler is judged by the retry policy on this thread.
    const raised = (err: Error, text = describeError(err)): Outcome => ({ ...failed(text), thrown: err });
    let settle!: (o: Outcome, keepThread: boolean) => void;
    let closed = false;
    const report = (m: ReportMessage) => {
      let written: Promise<void>;
      try {
        written =
          m.kind === "progress"
            ? support.reports.report(row, checkProgress(m.fraction, m.message), null)
            : support.reports.report(row, null, checkMetaPatch(m.patch));
      } catch (err) {
        slot.thread.postMessage({ type: "reported", runId, seq: m.seq, error: errorData(err as Error) });
        return;
      }
      void written.then(() => slot.thread.postMessage({ type: "reported", runId, seq: m.seq }));
    };

    const outcome = new Promise<Outcome>((resolve) => {
      let done = false;
      const onMessage = (m: DoneMessage | ReportMessage | { type: string }) => {
        if (m.type === "report" && (m as ReportMessage).runId === runId && !closed) return report(m as ReportMessage);
        if (m.type !== "done" || (m as DoneMessage).runId !== runId) return;
        const d = m as DoneMessage;
        if (d.ok) return settle(resultOutcome(d.value, seconds()), true);
        if (d.notJson !== undefined) {
          // Final: the same code would return the same value on every retry.
          const e = new HandlerError(`handler returned a value JSON cannot carry: ${d.notJson}`);
          return settle(failed(`${e.name}: ${e.message}`, true), true);
        }
        const { errorType: type, errorMessage: message, policyError } = d;
        settle({ ...failed(describeError(d.error), d.final), type, message, policyError }, true);
      };
      const onError = (err: Error) => settle(raised(err), false);
      const onExit = (code: number) => {
        const e = new HandlerError(`task thread exited with code ${code} while running the task`);
        settle(raised(e, `${e.name}: ${e.message}`), false);
      };
      let timer: NodeJS.Timeout | undefined;
      settle = (o, keepThread) => {
        if (done) return;
        done = true;
        closed = true;
        clearTimeout(timer);
        slot.thread.off("message", onMessage);
        slot.thread.off("error", onError);
        slot.thread.off("exit", onExit);
        if (keepThread && !this.#closed) this.#idle.push(slot);
        else this.#retire(slot);
        // Once cancelled, any failure ends the attempt CANCELLED (never retried).
        resolve(
          cancelled && o.kind === "failed"
            ? { kind: "cancelled", error: errorLine(cancelled), duration: o.duration }
            : o,
        );
      };
      slot.thread.on("message", onMessage);
      slot.thread.once("error", onError);
      slot.thread.once("exit", onExit);
      slot.ready.then(
        () => {
          if (done) return;
          // The timeout counts from the moment the task reaches its thread, not from the thread's start-up.
          started = performance.now();
          timer = setTimeout(
            () => {
              const e = new TaskTimeoutError(row.timeout);
              // Timers may fire a fraction of a millisecond early by the performance clock: it ran its timeout.
              const error = `${e.name}: ${e.message} (its thread was terminated)`;
              settle(
                { kind: "failed", error, final: false, duration: Math.max(seconds(), row.timeout), thrown: e },
                false,
              );
            },
            Math.min(row.timeout * 1000, MAX_TIMER_MS),
          );
          slot.thread.postMessage({ type: "run", runId, name: row.name, args: row.args, ctx });
          // Cancelled while the thread was starting: the abort sent then found no task running.
          if (cancelled) slot.thread.postMessage({ type: "abort", reason: errorData(cancelled) });
        },
        (err: Error) => settle(failed(describeError(err)), false),
      );
    });
    const exec: Execution = {
      row,
      slot: -1,
      release: () => {
        // Let the handler see why, then end the thread: the task goes back to the queue either way (a cancelled one
        // ends CANCELLED instead).
        slot.thread.postMessage({ type: "abort", reason: errorData(new WorkerShutdownError()) });
        settle(cancelled ? failed("") : { kind: "released" }, false);
      },
      cancel: () => {
        if (cancelled || closed) return;
        cancelled = new TaskCancelledError();
        slot.thread.postMessage({ type: "abort", reason: errorData(cancelled) });
        const grace = support.cancelGrace;
        const abandon = new TaskCancelledError(
          `the task was cancelled and abandoned after ignoring its signal for ${grace} s (its thread was terminated)`,
        );
        setTimeout(
          () => settle({ kind: "cancelled", error: errorLine(abandon), duration: seconds() }, false),
          grace * 1000,
        ).unref();
      },
    };
    // The handler's last progress or meta is written before its outcome is handed on.
    void outcome
      .then(async (o) => {
        await support.reports.flush(row);
        return o;
      })
      .then((o) => listener(exec, o));
    return exec;
  }

  /** Threads start on demand. */
  start(): void {}

  stop(): Promise<void> {
    return this.close();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#idle.length = 0;
    await Promise.all([...this.#all].map((t) => t.terminate()));
    this.#all.clear();
  }
}

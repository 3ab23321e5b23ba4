import { isTransientError } from "../db/errors.js";
import type { Queryable } from "../db/statements.js";
import { OutcomeNotStorableError, PayloadTooLargeError } from "../errors.js";
import { assertJsonSize, payloadLimit } from "../json.js";
import { storableText } from "../json-storable.js";
import type { Logger } from "../logger.js";
import type { Notifier } from "../notify/index.js";
import { RetryDelay } from "../retry-delay.js";
import type { ClaimedRow } from "../sql/claim.js";
import { completeTasks, failTasks, type Backoff, type Completion, type Failure } from "../sql/finish.js";
import { releaseTasks, type Release } from "../sql/release.js";
import { cancelTasks, type Cancellation } from "../sql/cancel.js";
import { recordStarts } from "../sql/start.js";
import { STORED_MESSAGE_CHARS } from "../sql/errors-column.js";
import type { Claim, JsonValue } from "../task.js";
import { nobodyListens, noSignal, type Listening, type RunningTask, type Signal, type WorkerEvents } from "./events.js";
import { runningTask } from "./running-task.js";
import { taskFields } from "./task-log.js";
import { writeIsolating } from "./isolate.js";
import { OutcomeQueue, storableError } from "./outcome-queue.js";

export interface CompleterOptions {
  /** Where outcomes are written (the worker's pool, through its query timeout). */
  q: Queryable;
  /** The tasks table, quoted. */
  tasks: string;
  /** The lease's other half: every outcome is written only onto rows this worker claimed. */
  workerId: string;
  notifier: Notifier;
  logger: Logger;
  /** Retry backoff of failed attempts. */
  backoff: Backoff;
  /** Largest result stored, in bytes of UTF-8 JSON text; a larger one fails its task. Default 32 MiB. */
  maxResultBytes?: number;
  signal?: Signal;
  /** Whether a task event has listeners: task:completed, task:failed and task:retrying are built only then. */
  listening?: Listening;
}

/**
 * An outcome with the row its attempt ran, for the task events emitted once it is stored (a reference the attempt
 * already holds: nothing is built per task unless someone listens).
 */
export type WithRow<T> = T & { row?: ClaimedRow };

/**
 * Writes outcomes in batches. Outcomes that arrive while a write is in flight wait for the next one, so under load
 * one UPDATE carries many results and when idle a result is written on the next turn of the event loop. After a
 * batch commits, the ids that reached a final state are published for waiters. A write that fails for a lost
 * connection is retried with backoff; the rows stay PROGRESS (and heartbeated) meanwhile, and if the worker dies
 * first they are swept like any other running task.
 *
 * One outcome must never hold up the others. What Postgres is known to refuse is stopped on the way in: a result
 * over `maxResultBytes` fails its task at once (NUL characters and lone surrogates were refused when the result
 * was serialized, see json.ts), and error texts are made storable. Should a batch fail anyway with an error that is
 * not about the connection, it is split in halves until the rows Postgres refuses are alone; each is then recorded
 * as a final failure with OutcomeNotStorableError, and every other outcome is written. When even that failure
 * cannot be written, the fault is not the row's (a table gone, no permission, a read-only server): the write is
 * retried with backoff, as for a lost connection.
 */
export class Completer {
  readonly #q: Queryable;
  readonly #tasks: string;
  readonly #notifier: Notifier;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  /** The lease's other half: every outcome is written only onto rows this worker claimed. */
  readonly #workerId: string;
  readonly #maxResultBytes: number;
  readonly #signal: Signal;
  readonly #listening: Listening;
  readonly #completions = new OutcomeQueue<WithRow<Completion>>((c) => c.resultJson.length);
  readonly #failures = new OutcomeQueue<WithRow<Failure>>((f) => f.error.length);
  readonly #releases = new OutcomeQueue<Release>(() => 0);
  readonly #cancels = new OutcomeQueue<Cancellation & { task: RunningTask }>((c) => c.error.length);
  /** Prefetched tasks whose handlers started, for recordStarts (sql/start.ts). */
  #starts: Claim[] = [];
  #flushing: Promise<void> | null = null;
  #scheduled = false;
  readonly #retryDelay = new RetryDelay();
  #idle: (() => void)[] = [];
  /** Outcomes being written right now: their rows are still PROGRESS until the write commits. */
  #inflight: Claim[] = [];

  constructor(options: CompleterOptions) {
    this.#q = options.q;
    this.#workerId = options.workerId;
    this.#tasks = options.tasks;
    this.#notifier = options.notifier;
    this.#log = options.logger;
    this.#backoff = options.backoff;
    this.#maxResultBytes = payloadLimit("maxResultBytes", options.maxResultBytes);
    this.#signal = options.signal ?? noSignal;
    this.#listening = options.listening ?? nobodyListens;
  }

  /** Outcomes accepted but not yet written. */
  get pending(): number {
    return (
      this.#completions.items.length +
      this.#failures.items.length +
      this.#releases.items.length +
      this.#cancels.items.length +
      this.#starts.length
    );
  }

  /** Whether a write is in flight. */
  get writing(): boolean {
    return this.#flushing !== null || this.#scheduled;
  }

  /** Every task whose outcome is accepted but not yet committed (the heartbeat keeps these alive). */
  held(): Claim[] {
    return [
      ...this.#inflight,
      ...this.#completions.items,
      ...this.#failures.items,
      ...this.#releases.items,
      ...this.#cancels.items,
    ];
  }

  /** A result over maxResultBytes fails its task instead, for good: it would be as large on every retry. */
  complete(c: WithRow<Completion>): void {
    const json = c.resultJson;
    if (json.length * 3 > this.#maxResultBytes) {
      try {
        assertJsonSize(json, "result", this.#maxResultBytes, "maxResultBytes");
      } catch (err) {
        const e = err as PayloadTooLargeError;
        this.#log.warn("task result too large to store; failing the task", { ...fieldsOf(c), error: e.message });
        return this.fail({
          id: c.id,
          attempt: c.attempt,
          error: `${e.name}: ${e.message}`,
          duration: c.duration,
          final: true,
          row: c.row,
        });
      }
    }
    this.#completions.push(c);
    this.#schedule();
  }

  /**
   * The error text is stored as Postgres can take it: NULs escaped, lone surrogates replaced, cut to a length. The
   * error's type and message, when not given, are read from the first line of its text ("Name: message").
   */
  fail(f: WithRow<Failure>): void {
    let { type, message } = f;
    if (type === undefined || message === undefined) ({ type, message } = typeAndMessage(f.error));
    this.#failures.push({
      ...f,
      error: storableError(f.error),
      type: storableText(type),
      message: storableText(message.slice(0, STORED_MESSAGE_CHARS)),
    });
    this.#schedule();
  }

  release(c: Release): void {
    this.#releases.push(c);
    this.#schedule();
  }

  /** An attempt stopped at the request of cancelTask: written CANCELLED (never retried), then task:cancelled. */
  cancel(c: Cancellation & { task: RunningTask }): void {
    this.#cancels.push(c);
    this.#schedule();
  }

  /**
   * A prefetched task's handler started: recorded with the next write, unless its outcome goes in the same one. Until
   * then a crash hands it back uncharged, which is the cost of not delaying the start by a round trip.
   */
  started(c: Claim): void {
    this.#starts.push(c);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  #flush(): Promise<void> {
    if (!this.#flushing) {
      this.#flushing = this.#write().finally(() => {
        this.#flushing = null;
        if (this.pending > 0) {
          if (this.#retryDelay.current > 0) setTimeout(() => this.#schedule(), this.#retryDelay.current).unref();
          else this.#schedule();
        } else {
          for (const resolve of this.#idle.splice(0)) resolve();
        }
      });
    }
    return this.#flushing;
  }

  async #write(): Promise<void> {
    const completions = this.#completions.take();
    const failures = this.#failures.take();
    const releases = this.#releases.take();
    const cancels = this.#cancels.take();
    let starts = this.#starts;
    this.#starts = [];
    this.#inflight = [...completions, ...failures, ...releases, ...cancels];
    const finished: string[] = [];
    // How many of each list are written (or settled otherwise): they are written in order, so on an error the rest
    // are the ones to keep for the next try.
    const done = { completions: 0, failures: 0, releases: 0, cancels: 0 };
    try {
      if (starts.length > 0) {
        // An id has one lease at a time in one worker, so an outcome in this write covers its start.
        const ending = new Set<string>();
        for (const c of this.#inflight) ending.add(c.id);
        const running = starts.filter((c) => !ending.has(c.id));
        if (running.length > 0) await recordStarts(this.#q, this.#tasks, this.#workerId, running);
        starts = [];
      }
      if (completions.length > 0) {
        await writeIsolating(
          completions,
          async (batch) => {
            const missed = await completeTasks(this.#q, this.#tasks, this.#workerId, batch);
            const stale = missed.length > 0 ? new Set(missed) : null;
            for (const c of batch) {
              if (stale?.has(c.id)) this.#stale(c, "completion");
              else finished.push(c.id);
            }
            done.completions += batch.length;
            if (this.#listening("task:completed")) this.#completed(batch, stale);
          },
          async (c, err) => {
            await this.#refused(c, "result", err, finished);
            done.completions++;
          },
        );
      }
      if (failures.length > 0) {
        await writeIsolating(
          failures,
          async (batch) => {
            await this.#writeFailures(batch, finished);
            done.failures += batch.length;
          },
          async (f, err) => {
            await this.#refused(f, "error text", err, finished);
            done.failures++;
          },
        );
      }
      if (releases.length > 0) {
        // A release carries nothing but the lease: an error on it is never the row's own.
        const released = await releaseTasks(this.#q, this.#tasks, this.#workerId, releases);
        done.releases = releases.length;
        for (const r of released) if (r.cancelled) finished.push(r.id);
      }
      if (cancels.length > 0) {
        // Like a release, a cancellation carries the lease and a short text of ours: an error is never the row's own.
        const written = await cancelTasks(this.#q, this.#tasks, this.#workerId, cancels);
        done.cancels = cancels.length;
        for (const c of cancels) {
          if (!written.has(c.id)) continue; // the attempt had moved on: nothing to cancel
          finished.push(c.id);
          try {
            this.#signal("task:cancelled", { task: c.task, duration: c.duration });
          } catch (err) {
            // Written already: a listener's own bug must not make the batch look failed.
            this.#log.error("a task:cancelled listener threw", { error: (err as Error)?.message });
          }
        }
      }
      this.#retryDelay.reset();
    } catch (err) {
      // What did not commit is kept for the next try, ahead of newer outcomes.
      this.#completions.putBack(completions.slice(done.completions));
      this.#failures.putBack(failures.slice(done.failures));
      this.#releases.putBack(releases.slice(done.releases));
      this.#cancels.putBack(cancels.slice(done.cancels));
      this.#starts.unshift(...starts);
      const retryInMs = Math.round(this.#retryDelay.next());
      const level = isTransientError(err) ? "warn" : "error";
      this.#log[level]("could not record task outcomes; will retry", {
        error: (err as Error).message,
        retryInMs,
      });
      this.#signal("outcomes:failed", { error: err as Error, retryInMs });
    } finally {
      this.#inflight = [];
      // Announce what did commit, even when a later statement of the batch failed.
      this.#notifier.publishFinished(finished);
    }
  }

  async #writeFailures(batch: WithRow<Failure>[], finished: string[]): Promise<void> {
    const changed = await failTasks(this.#q, this.#tasks, this.#workerId, batch, this.#backoff);
    const failedHeard = this.#listening("task:failed");
    const retryingHeard = this.#listening("task:retrying");
    for (const f of batch) {
      const row = changed.get(f.id);
      if (row === undefined) this.#stale(f, "failure");
      else if (row.status === "FAILED") {
        finished.push(f.id);
        if (failedHeard && f.row) {
          const { error, type = "", message = "", duration } = f;
          this.#signal("task:failed", { task: runningTask(f.row, this.#workerId), error, type, message, duration });
        }
      } else if (row.status === "CANCELLED") {
        finished.push(f.id);
        if (f.row && this.#listening("task:cancelled")) {
          this.#signal("task:cancelled", { task: runningTask(f.row, this.#workerId), duration: f.duration });
        }
      } else {
        this.#notifier.publishWake(row.queue, 1, row.run_at.getTime());
        if (retryingHeard && f.row) {
          const { error, type = "", message = "", duration } = f;
          const task = runningTask(f.row, this.#workerId);
          this.#signal("task:retrying", { task, error, type, message, duration, runAt: row.run_at });
        }
      }
    }
  }

  /** task:completed for each stored completion of a batch (`stale`: those whose lease was gone). */
  #completed(batch: WithRow<Completion>[], stale: Set<string> | null): void {
    for (const c of batch) {
      if (stale?.has(c.id) || !c.row) continue;
      this.#signal("task:completed", completedEvent(runningTask(c.row, this.#workerId), c.resultJson, c.duration));
    }
  }

  /**
   * Postgres refused this outcome alone: fails the task for good with OutcomeNotStorableError. If that failure
   * cannot be written either, the fault is not this row's: the original error is thrown, and the write retried.
   */
  async #refused(
    claim: WithRow<Claim & { duration: number }>,
    what: string,
    err: unknown,
    finished: string[],
  ): Promise<void> {
    const code = (err as { code?: unknown }).code;
    const message = storableText(String((err as Error)?.message ?? err)).slice(0, 500);
    const e = new OutcomeNotStorableError(
      `Postgres refused its ${what}: ${message}${typeof code === "string" ? ` (${code})` : ""}`,
    );
    const failure: WithRow<Failure> = {
      id: claim.id,
      attempt: claim.attempt,
      error: `${e.name}: ${e.message}`,
      type: e.name,
      message: storableText(e.message),
      duration: claim.duration,
      final: true,
      row: claim.row,
    };
    try {
      await this.#writeFailures([failure], finished);
    } catch {
      throw err;
    }
    this.#log.error("Postgres refused a task's outcome; the task is failed instead", {
      ...fieldsOf(claim),
      error: e.message,
    });
    this.#signal("outcome:refused", { id: claim.id, attempt: claim.attempt, error: e.message });
  }

  #stale(c: WithRow<Claim>, what: "completion" | "failure"): void {
    this.#log.warn(`${what} discarded: task ${c.id} attempt ${c.attempt} is no longer this worker's`, fieldsOf(c));
    this.#signal("outcome:discarded", { id: c.id, attempt: c.attempt, kind: what });
  }

  start(): void {}

  /** Writes every outcome still held (for up to 10 s: after that the sweeper takes those tasks back). */
  async stop(): Promise<void> {
    if (!(await this.drain(10_000))) {
      this.#log.error("could not record every task outcome before exit; the sweeper will take those tasks back");
    }
  }

  /** Resolves once nothing is left to write, without hurrying a write that waits to be retried (as drain does). */
  whenIdle(): Promise<void> {
    if (this.pending === 0 && !this.#flushing) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Resolves once every accepted outcome is written (or `timeoutMs` passes). Returns whether all were written. */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.pending === 0 && !this.#flushing) return true;
    const idle = new Promise<void>((resolve) => this.#idle.push(resolve));
    this.#retryDelay.reset();
    this.#schedule();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const done = await Promise.race([idle.then(() => true), timedOut]);
    clearTimeout(timer);
    return done;
  }
}

/**
 * task:completed's data, its result parsed when first read: a listener that only counts (metrics) never pays for
 * parsing a large result. An own enumerable getter, so the event serializes (IPC, JSON) with its result.
 */
function completedEvent(task: RunningTask, resultJson: string, duration: number): WorkerEvents["task:completed"][0] {
  let result: JsonValue | undefined;
  return {
    task,
    get result(): JsonValue {
      return (result ??= JSON.parse(resultJson) as JsonValue);
    },
    duration,
  };
}

/** A task's log fields: id, name, queue and attempt (the name and queue when the outcome carries its row). */
function fieldsOf(c: WithRow<Claim>): Record<string, unknown> {
  return c.row ? taskFields(c.row) : { task: c.id, attempt: c.attempt };
}

/** The name and message of an error text whose first line reads "Name: message" (as skiplock writes its own). */
function typeAndMessage(text: string): { type: string; message: string } {
  const nl = text.indexOf("\n");
  const line = nl < 0 ? text : text.slice(0, nl);
  const m = /^([A-Za-z_$][\w$]*): ?(.*)$/.exec(line);
  return m ? { type: m[1]!, message: m[2]! } : { type: "Error", message: line };
}

import { isTransientError, type Queryable } from "../db/store.js";
import type { Logger } from "../logger.js";
import type { Notifier } from "../notify/index.js";
import { completeTasks, failTasks, type Backoff, type Completion, type Failure } from "../sql/finish.js";
import { releaseTasks, type Release } from "../sql/release.js";
import { recordStarts } from "../sql/start.js";
import type { Claim } from "../task.js";

/**
 * Writes outcomes in batches. Outcomes that arrive while a write is in flight wait for the next one, so under load
 * one UPDATE carries many results and when idle a result is written on the next turn of the event loop. After a
 * batch commits, the ids that reached a final state are published for waiters. A write that fails for a lost
 * connection is retried with backoff; the rows stay PROGRESS (and heartbeated) meanwhile, and if the worker dies
 * first they are swept like any other running task.
 */
export class Completer {
  readonly #q: Queryable;
  readonly #tasks: string;
  readonly #notifier: Notifier;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  /** The lease's other half: every outcome is written only onto rows this worker claimed. */
  readonly #workerId: string;
  #completions: Completion[] = [];
  #failures: Failure[] = [];
  #releases: Release[] = [];
  /** Prefetched tasks whose handlers started, for recordStarts (sql/start.ts). */
  #starts: Claim[] = [];
  #flushing: Promise<void> | null = null;
  #scheduled = false;
  #retryDelay = 0;
  #idle: (() => void)[] = [];
  /** Outcomes being written right now: their rows are still PROGRESS until the write commits. */
  #inflight: Claim[] = [];

  constructor(q: Queryable, tasks: string, workerId: string, notifier: Notifier, log: Logger, backoff: Backoff) {
    this.#q = q;
    this.#workerId = workerId;
    this.#tasks = tasks;
    this.#notifier = notifier;
    this.#log = log;
    this.#backoff = backoff;
  }

  /** Outcomes accepted but not yet written. */
  get pending(): number {
    return this.#completions.length + this.#failures.length + this.#releases.length + this.#starts.length;
  }

  /** Every task whose outcome is accepted but not yet committed (the heartbeat keeps these alive). */
  held(): Claim[] {
    return [...this.#inflight, ...this.#completions, ...this.#failures, ...this.#releases];
  }

  complete(c: Completion): void {
    this.#completions.push(c);
    this.#schedule();
  }

  fail(f: Failure): void {
    this.#failures.push(f);
    this.#schedule();
  }

  release(c: Release): void {
    this.#releases.push(c);
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
          if (this.#retryDelay > 0) setTimeout(() => this.#schedule(), this.#retryDelay).unref();
          else this.#schedule();
        } else {
          for (const resolve of this.#idle.splice(0)) resolve();
        }
      });
    }
    return this.#flushing;
  }

  async #write(): Promise<void> {
    let completions = this.#completions;
    let failures = this.#failures;
    let releases = this.#releases;
    let starts = this.#starts;
    this.#completions = [];
    this.#failures = [];
    this.#releases = [];
    this.#starts = [];
    this.#inflight = [...completions, ...failures, ...releases];
    const finished: string[] = [];
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
        const missed = await completeTasks(this.#q, this.#tasks, this.#workerId, completions);
        const stale = new Set(missed);
        for (const c of completions) {
          if (stale.has(c.id)) this.#stale(c, "completion");
          else finished.push(c.id);
        }
        completions = [];
      }
      if (failures.length > 0) {
        const changed = await failTasks(this.#q, this.#tasks, this.#workerId, failures, this.#backoff);
        for (const f of failures) {
          const row = changed.get(f.id);
          if (row === undefined) this.#stale(f, "failure");
          else if (row.status === "FAILED") finished.push(f.id);
          else this.#notifier.publishWake(row.queue, 1, row.run_at.getTime());
        }
        failures = [];
      }
      if (releases.length > 0) {
        await releaseTasks(this.#q, this.#tasks, this.#workerId, releases);
        releases = [];
      }
      this.#retryDelay = 0;
    } catch (err) {
      // What did not commit is kept for the next try, ahead of newer outcomes.
      this.#completions.unshift(...completions);
      this.#failures.unshift(...failures);
      this.#releases.unshift(...releases);
      this.#starts.unshift(...starts);
      this.#retryDelay = Math.min(Math.max(this.#retryDelay * 2, 100), 5000) * (0.5 + Math.random() / 2);
      const level = isTransientError(err) ? "warn" : "error";
      this.#log[level]("could not record task outcomes; will retry", {
        error: (err as Error).message,
        retryInMs: Math.round(this.#retryDelay),
      });
    } finally {
      this.#inflight = [];
      // Announce what did commit, even when a later statement of the batch failed.
      this.#notifier.publishFinished(finished);
    }
  }

  #stale(c: Claim, what: string): void {
    this.#log.warn(`${what} discarded: task ${c.id} attempt ${c.attempt} is no longer this worker's`, {
      task: c.id,
      attempt: c.attempt,
    });
  }

  /** Resolves once every accepted outcome is written (or `timeoutMs` passes). Returns whether all were written. */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.pending === 0 && !this.#flushing) return true;
    const idle = new Promise<void>((resolve) => this.#idle.push(resolve));
    this.#retryDelay = 0;
    this.#schedule();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const done = await Promise.race([idle.then(() => true), timedOut]);
    clearTimeout(timer);
    return done;
  }
}

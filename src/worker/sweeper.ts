import { isTransientError } from "../db/errors.js";
import type { Queryable } from "../db/statements.js";
import type { Logger } from "../logger.js";
import type { Notifier } from "../notify/index.js";
import { sweepStaleTasks, type SweptTask } from "../sql/sweep.js";
import { nobodyListens, noSignal, type Listening, type Signal } from "./events.js";
import type { ClusterLock } from "./lock.js";

export interface SweeperOptions {
  q: Queryable;
  tasks: string;
  schema: string;
  lock: ClusterLock;
  notifier: Notifier;
  logger: Logger;
  /** Seconds without a heartbeat after which a running task counts as lost. */
  staleAfter: number;
  /** Seconds between sweeps. */
  interval: number;
  /**
   * Epoch ms since which this process's contact with Postgres has been unbroken. The sweeper judges others' tasks
   * only after staleAfter seconds of it: when this process could not reach Postgres, others likely could not either,
   * and need that long to beat again. Default: always in contact.
   */
  inContactSince?: () => number;
  signal?: Signal;
  listening?: Listening;
}

/**
 * Gives the tasks of lost workers back to the queue (or fails them once their retries are spent). Every worker
 * runs one; the cluster lock makes them take turns, and since the sweep statement is compare-and-set under
 * SKIP LOCKED, two sweeps at once are still correct when the lock is unavailable.
 */
export class Sweeper {
  readonly #o: SweeperOptions;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<unknown> | null = null;
  #stopped = true;

  constructor(options: SweeperOptions) {
    this.#o = options;
  }

  start(): void {
    this.#stopped = false;
    this.#schedule(this.#o.interval * 1000 * Math.random()); // spread the first sweeps of workers started together
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.sweepOnce()
        .catch((err: Error) => {
          const level = isTransientError(err) ? "warn" : "error";
          this.#o.logger[level]("stale-task sweep failed", { error: err.message });
        })
        .finally(() => {
          this.#running = null;
          this.#schedule(this.#o.interval * 1000 * (0.8 + Math.random() * 0.4));
        });
    }, ms);
    this.#timer.unref();
  }

  /**
   * One sweep (all batches) under the cluster lock. Returns what it moved, or null when it did not sweep: another
   * process holds the lock, or this one has not been in touch with Postgres for staleAfter yet.
   */
  async sweepOnce(): Promise<SweptTask[] | null> {
    const { q, tasks, schema, lock, staleAfter, inContactSince } = this.#o;
    if (inContactSince && Date.now() - inContactSince() < staleAfter * 1000) return null;
    const outcome = await lock.run(`skiplock:${schema}:lock:sweeper`, Math.max(10_000, staleAfter * 1000), async () => {
      const all: SweptTask[] = [];
      for (;;) {
        const batch = await sweepStaleTasks(q, tasks, staleAfter);
        all.push(...batch);
        if (batch.length < 1000) return all;
      }
    });
    if (outcome.skipped) return null;
    const swept = outcome.value ?? [];
    this.#report(swept);
    return swept;
  }

  #report(swept: SweptTask[]): void {
    if (swept.length === 0) return;
    const failed = swept.filter((t) => t.status === "FAILED").map((t) => t.id);
    // A task whose cancel was requested while it ran ends CANCELLED rather than running again.
    const cancelled = swept.filter((t) => t.status === "CANCELLED").map((t) => t.id);
    const requeued = swept.filter((t) => t.status === "PENDING");
    const report = {
      requeued: requeued.filter((t) => t.charged).map((t) => t.id),
      handedBack: requeued.filter((t) => !t.charged).map((t) => t.id),
      failed,
      cancelled,
      workers: [...new Set(swept.map((t) => t.worker_id))],
    };
    this.#o.logger.warn("swept tasks of lost workers", report);
    const signal = this.#o.signal ?? noSignal;
    signal("swept", report);
    if ((this.#o.listening ?? nobodyListens)("task:swept")) {
      for (const t of swept) {
        const outcome =
          t.status === "FAILED"
            ? "failed"
            : t.status === "CANCELLED"
              ? "cancelled"
              : t.charged
                ? "requeued"
                : "handed-back";
        const { id, name, queue, attempt } = t;
        signal("task:swept", { id, name, queue, attempt, outcome, workerId: t.worker_id });
      }
    }
    this.#o.notifier.publishFinished([...failed, ...cancelled]);
    const byQueue = new Map<string, number>();
    for (const t of requeued) byQueue.set(t.queue, (byQueue.get(t.queue) ?? 0) + 1);
    for (const [queue, n] of byQueue) this.#o.notifier.publishWake(queue, n);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
  }
}

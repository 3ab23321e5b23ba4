import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Store } from "../db/store.js";
import type { Logger } from "../logger.js";
import type { Notifier } from "../notify/index.js";
import type { ClaimedRow } from "../sql/claim.js";
import type { Backoff } from "../sql/finish.js";
import { recordStarts } from "../sql/start.js";
import type { Claim, Isolation } from "../task.js";
import { Attempts } from "../worker/attempts.js";
import { cancelRunning } from "../worker/cancels.js";
import { Completer } from "../worker/completer.js";
import type { Listening, Signal, WorkerEventName, WorkerEvents } from "../worker/events.js";
import { Heartbeat } from "../worker/heartbeat.js";
import type { Registered } from "../worker/registry.js";
import { ReportWriter } from "../worker/reports.js";
import { Slots } from "../worker/slots.js";
import type { ThreadPool } from "../worker/thread-pool.js";

/** How one task claimed by a trigger call ended. */
export interface TaskRun {
  id: string;
  name: string;
  queue: string;
  attempt: number;
  /**
   * completed, failed (for good), retrying (queued again for `runAt`), cancelled; lost: the outcome found the lease
   * gone (the task was swept meanwhile) and changed nothing.
   */
  outcome: "completed" | "failed" | "retrying" | "cancelled" | "lost";
  /** Seconds the handler ran; null when unknown (a lost outcome). */
  duration: number | null;
  /** The error's name and message, for failed and retrying. */
  error?: string;
  /** When a retrying task is due again (ISO). */
  runAt?: string;
}

/** A runner's settings, checked: a worker's, for the tasks a call runs. */
export interface BatchSettings {
  isolation: Isolation;
  maxRetries: number;
  heartbeatInterval: number;
  staleAfter: number;
  cancelGrace: number;
  retryBackoff: Backoff;
  maxResultBytes: number | undefined;
}

/** What every call of a runner shares: checked settings, connections, handlers. */
export interface BatchDeps extends BatchSettings {
  store: Store;
  notifier: Notifier;
  databaseUrl: string;
  logger: Logger;
  registry: ReadonlyMap<string, Registered>;
  threads: ThreadPool | null;
  /** Where the task events go (the dashboard's `events`), and whether anyone listens there. */
  signal: Signal;
  listening: Listening;
}

/** The events a batch reads its results from: always built. */
const OUTCOME_EVENTS: ReadonlySet<WorkerEventName> = new Set([
  "task:completed",
  "task:failed",
  "task:retrying",
  "task:cancelled",
]);

/** A worker id like a worker's (host:pid:random), marked as a trigger call's for whoever reads the rows. */
function triggerWorkerId(): string {
  return `${hostname()}:${process.pid}:run-${randomUUID().slice(0, 8)}`;
}

/**
 * One trigger call's worker, without the fetch loop: the same pieces a Worker composes (slots, attempts inline or in
 * threads, the completer, the report writer, the heartbeat thread), under a worker id of its own, so every task it
 * claims holds a lease like a worker's and a process that dies mid-task leaves rows the sweeper takes back. The
 * caller claims rows and hands them to `begin`; `finish` waits for every attempt and every outcome write.
 */
export class Batch {
  readonly workerId = triggerWorkerId();
  readonly #deps: BatchDeps;
  readonly #slots: Slots;
  readonly #completer: Completer;
  readonly #reports: ReportWriter;
  readonly #attempts: Attempts;
  readonly #heartbeat: Heartbeat;
  readonly #runs: TaskRun[] = [];
  #slotWaiters: (() => void)[] = [];
  #heartbeatStarted = false;
  #offCancel: (() => void) | null = null;
  #finished = false;

  constructor(deps: BatchDeps, concurrency: number) {
    this.#deps = deps;
    const { store, logger } = deps;
    const signal = this.#signal;
    const listening: Listening = (name) => OUTCOME_EVENTS.has(name) || deps.listening(name);
    const db = { q: store.hotQueries, tasks: store.tasks, logger, signal, listening };
    this.#slots = new Slots(concurrency);
    this.#completer = new Completer({
      ...db,
      workerId: this.workerId,
      notifier: deps.notifier,
      backoff: deps.retryBackoff,
      ...(deps.maxResultBytes !== undefined ? { maxResultBytes: deps.maxResultBytes } : {}),
    });
    this.#reports = new ReportWriter({
      ...db,
      workerId: this.workerId,
      maxRetries: deps.maxRetries,
      notifier: deps.notifier,
    });
    this.#attempts = new Attempts({
      slots: this.#slots,
      workerId: this.workerId,
      maxRetries: deps.maxRetries,
      isolation: deps.isolation,
      registry: () => deps.registry,
      threads: () => deps.threads,
      completer: this.#completer,
      support: { reports: this.#reports, cancelGrace: deps.cancelGrace },
      recordStart: async (row) => (await recordStarts(store.hotQueries, store.tasks, this.workerId, [row])) === 1,
      accepting: () => !this.#finished,
      slotFreed: () => {
        for (const wake of this.#slotWaiters.splice(0)) wake();
      },
      // Attempts are never cut short here: a call waits for its tasks (their own timeouts bound them).
      shutdownTimeout: 0,
      logger,
      signal,
      listening,
      report: (error, during, task) => {
        logger.error(`error in ${during}`, { worker: this.workerId, ...task, error: error.message });
        signal("worker:error", { error, during });
      },
    });
    this.#heartbeat = new Heartbeat({
      databaseUrl: deps.databaseUrl,
      // Through PgBouncer its statements go unnamed, as a worker's do (several calls' threads share server connections).
      pgbouncer: store.pgbouncer,
      // The embedded database's one session is in this thread: beat through it, as a worker there does.
      q: store.hotQueries,
      inline: store.embedded !== null,
      tasks: store.tasks,
      workerId: this.workerId,
      interval: deps.heartbeatInterval,
      grace: deps.staleAfter,
      logger,
      held: () => this.#held(),
      onCancelRequested: (claims) => claims.forEach((c) => cancelRunning(this.#slots, c.id, c.attempt)),
      signal,
    });
  }

  /** Records the outcomes this call reports, then passes every event on. */
  readonly #signal: Signal = (name, ...args) => {
    this.#record(name, args[0]);
    if (!this.#deps.listening(name)) return;
    try {
      this.#deps.signal(name, ...args);
    } catch (err) {
      // A listener's bug must not make a written outcome look failed.
      this.#deps.logger.error(`a ${name} listener threw`, { error: (err as Error)?.message });
    }
  };

  #record<K extends WorkerEventName>(name: K, data: WorkerEvents[K][0] | undefined): void {
    if (data === undefined) return;
    const push = (task: { id: string; name: string; queue: string; attempt: number }, run: Partial<TaskRun>) =>
      void this.#runs.push({
        id: task.id,
        name: task.name,
        queue: task.queue,
        attempt: task.attempt,
        outcome: "completed",
        duration: null,
        ...run,
      });
    switch (name) {
      case "task:completed": {
        const d = data as WorkerEvents["task:completed"][0];
        return push(d.task, { outcome: "completed", duration: d.duration });
      }
      case "task:failed": {
        const d = data as WorkerEvents["task:failed"][0];
        return push(d.task, { outcome: "failed", duration: d.duration, error: `${d.type}: ${d.message}` });
      }
      case "task:retrying": {
        const d = data as WorkerEvents["task:retrying"][0];
        return push(d.task, {
          outcome: "retrying",
          duration: d.duration,
          error: `${d.type}: ${d.message}`,
          runAt: d.runAt.toISOString(),
        });
      }
      case "task:cancelled": {
        const d = data as WorkerEvents["task:cancelled"][0];
        return push(d.task, { outcome: "cancelled", duration: d.duration });
      }
      case "outcome:discarded": {
        const d = data as WorkerEvents["outcome:discarded"][0];
        const row = this.#claimed.get(`${d.id}:${d.attempt}`);
        return push(row ?? { id: d.id, name: "", queue: "", attempt: d.attempt }, { outcome: "lost" });
      }
    }
  }

  /** Claimed rows by `id:attempt`, to name a lost outcome's task. */
  readonly #claimed = new Map<string, ClaimedRow>();

  #held(): Claim[] {
    return [...this.#slots.all().map((e) => e.row), ...this.#completer.held()];
  }

  /** Free slots: how many more rows `begin` may take now. */
  get free(): number {
    return this.#slots.free;
  }

  /** Attempts running now. */
  get running(): number {
    return this.#slots.count;
  }

  /** Resolves when an attempt ends (at once when a slot is free). */
  slotFreed(): Promise<void> {
    if (this.#slots.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#slotWaiters.push(resolve));
  }

  /** Resolves once every outcome handed to the completer is written. */
  outcomesWritten(): Promise<void> {
    return this.#completer.whenIdle();
  }

  /** Starts claimed rows (no more than `free`), heartbeated from now on. */
  begin(rows: readonly ClaimedRow[]): void {
    if (rows.length === 0) return;
    if (!this.#heartbeatStarted) {
      this.#heartbeatStarted = true;
      // Cancel requests through Redis reach a running attempt at once; the heartbeat brings them anyway.
      void this.#deps.notifier.start();
      this.#offCancel = this.#deps.notifier.onCancel((id, attempt) => cancelRunning(this.#slots, id, attempt));
      this.#heartbeat.start();
    }
    for (const row of rows) this.#claimed.set(`${row.id}:${row.attempt}`, row);
    this.#heartbeat.track(rows);
    for (const row of rows) this.#attempts.begin(row);
  }

  /** Waits for every attempt to end and every outcome to be written, stops the services; the call's results. */
  async finish(): Promise<TaskRun[]> {
    while (this.#slots.count > 0) await this.slotFreed();
    this.#finished = true;
    // The completer writes what it holds (retrying for up to 10 s); anything left then is swept like a lost worker's.
    await this.#completer.stop();
    await this.#reports.stop();
    await this.#attempts.stop();
    this.#offCancel?.();
    if (this.#heartbeatStarted) await this.#heartbeat.stop();
    return this.#runs;
  }
}

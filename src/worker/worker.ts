import { EventEmitter } from "node:events";
import type { Registry } from "prom-client";
import { assertSchemaReady } from "../db/migrate.js";
import { InvalidOptionError } from "../errors.js";
import { Store } from "../db/store.js";
import { warnIfNoAutovacuum } from "../db/vacuum.js";
import { logsAt, type Logger } from "../logger.js";
import { WorkerMetrics } from "../metrics.js";
import { createNotifier, type Notifier } from "../notify/index.js";
import { claimTasks } from "../sql/claim.js";
import type { Schedule } from "../schedule/definition.js";
import { declaredSchedules, Scheduler } from "../schedule/scheduler.js";
import { recordStarts } from "../sql/start.js";
import type { Claim } from "../task.js";
import { Completer } from "./completer.js";
import { Contact } from "./contact.js";
import type { Listening, RunningTask, Signal, WorkerEventName, WorkerEvents } from "./events.js";
import { Attempts } from "./attempts.js";
import { cancelRunning } from "./cancels.js";
import { Fetcher } from "./fetcher.js";
import { Heartbeat } from "./heartbeat.js";
import { Presence } from "./presence.js";
import { ClusterLock } from "./lock.js";
import { resolveWorkerOptions, type WorkerConfig, type WorkerOptions } from "./options.js";
import { buildRegistry, loadHandlers, queuesOf, type Registered } from "./registry.js";
import { ReportWriter } from "./reports.js";
import type { Service } from "./service.js";
import { Slots } from "./slots.js";
import { Sweeper } from "./sweeper.js";
import { logTaskEvents, taskFields } from "./task-log.js";
import { tasksModuleUrl } from "./tasks-module.js";
import type { ThreadPool } from "./thread-pool.js";

export type { WorkerOptions } from "./options.js";

/** Workers started and not yet stopped, for the test suite's check that none is left running. */
const notStopped = new Set<Worker>();

/** @internal */
export function workersNotStopped(): Worker[] {
  return [...notStopped];
}

/**
 * Claims due tasks from Postgres and runs them. Composes its services: the fetcher (claim loop and prefetch
 * buffer), the slots and executors that run attempts, the completer (batched outcome writes), the heartbeat thread,
 * the stale-task sweeper under the cluster lock, and the Redis doorbell. Never runs more than `concurrency` tasks.
 * Reports what its services do as events (see events.ts).
 */
export class Worker<const S extends readonly Schedule[] = readonly Schedule[]> extends EventEmitter<WorkerEvents> {
  readonly id: string;
  readonly concurrency: number;
  readonly logger: Logger;
  readonly #c: WorkerConfig;
  #registry: Map<string, Registered>;
  readonly #tasksModuleUrl: string | null;
  #queues: string[] | null;
  #threads: ThreadPool | null = null;
  readonly #store: Store;
  readonly #notifier: Notifier;
  readonly #lock: ClusterLock;
  readonly #completer: Completer;
  readonly #heartbeat: Heartbeat;
  readonly #presence: Presence;
  readonly #reports: ReportWriter;
  readonly #sweeper: Sweeper;
  readonly #attempts: Attempts;
  readonly #slots: Slots;
  readonly #fetcher: Fetcher;
  readonly #contact = new Contact();
  readonly #metrics: WorkerMetrics | null;
  readonly #signal: Signal = (name, ...args) =>
    void (this.emit as (n: string, ...a: unknown[]) => boolean)(name, ...args);
  readonly #listening: Listening = (name) => this.listenerCount(name) > 0;
  /** The schedules this worker runs, for its registry row. */
  #scheduleNames: readonly string[] = [];
  /** Callers of runUntilIdle waiting for the worker to find nothing due (or to reach maxTasks). */
  #idleWaiters: { after: number; resolve: () => void }[] = [];
  #state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  #stopPromise: Promise<void> | null = null;
  /** The services started so far, in order; stopped in reverse. */
  readonly #services: Service[] = [];
  /** Unsubscribe functions of the worker's doorbell listeners. */
  readonly #listeners: (() => void)[] = [];

  constructor(options: WorkerOptions<S>) {
    super();
    const c = (this.#c = resolveWorkerOptions(options as WorkerOptions));
    this.id = c.workerId;
    this.concurrency = c.concurrency;
    this.logger = c.logger;
    this.#queues = c.queues;
    this.#registry = c.tasks ? buildRegistry(c.tasks) : new Map();
    this.#tasksModuleUrl = c.tasksModule ? tasksModuleUrl(c.tasksModule) : null;

    this.#store = new Store({
      databaseUrl: this.#c.connection.databaseUrl,
      schema: this.#c.connection.schema,
      poolSize: c.poolSize,
      applicationName: `skiplock worker ${this.id}`,
      // A claim or outcome write that gets no answer (a connection gone silent) fails and is retried on a fresh one.
      queryTimeout: 30_000,
      // Without one, claims share the pool and commit synchronously (see sessionSetup).
      claimConnection: c.claimConnection,
      // A pool of one is shared by every statement of the worker: waiting for it is waiting behind the others, each
      // bounded by queryTimeout, so it must not give up sooner (see docs/architecture.md, One connection).
      ...(c.poolSize === 1 ? { connectionTimeout: 60_000 } : {}),
      pgbouncer: c.pgbouncer,
    });
    this.#notifier = createNotifier({
      redisUrl: this.#c.connection.redisUrl,
      databaseUrl: this.#c.connection.databaseUrl,
      tls: this.#c.connection.redisTls,
      schema: this.#c.connection.schema,
      logger: this.logger,
    });
    // The embedded database serves one process: no cluster to lock against.
    this.#lock = new ClusterLock(
      this.#store.embedded ? undefined : this.#c.connection.redisUrl,
      this.#c.connection.redisTls,
    );
    // What the database services share.
    const db = {
      q: this.#store.hotQueries,
      tasks: this.#store.tasks,
      logger: this.logger,
      signal: this.#signal,
      listening: this.#listening,
    };
    this.#completer = new Completer({
      ...db,
      workerId: this.id,
      notifier: this.#notifier,
      backoff: c.retryBackoff,
      maxResultBytes: c.maxResultBytes,
    });
    this.#heartbeat = new Heartbeat({
      ...db,
      databaseUrl: this.#c.connection.databaseUrl,
      // The embedded database's one session lives in this thread: a thread of the beat's own cannot reach it.
      inline: !c.heartbeatThread || this.#store.embedded !== null,
      pgbouncer: c.pgbouncer,
      workers: this.#store.workers,
      running: () => this.#slots.count,
      workerId: this.id,
      interval: c.heartbeatInterval,
      grace: c.staleAfter,
      held: () => this.#held(),
      onFailing: () => this.#contact.lost(),
      onRestored: () => this.#contact.restored(),
      onCancelRequested: (claims) => claims.forEach((c) => this.#cancelRequested(c.id, c.attempt)),
    });
    this.#presence = new Presence({
      q: this.#store.pool,
      workers: this.#store.workers,
      logger: this.logger,
      record: () => ({
        id: this.id,
        queues: this.queues,
        concurrency: this.concurrency,
        schedules: this.#scheduleNames,
        heartbeatInterval: c.heartbeatInterval,
        staleAfter: c.staleAfter,
      }),
    });
    this.#reports = new ReportWriter({ ...db, workerId: this.id, maxRetries: c.maxRetries, notifier: this.#notifier });
    this.#slots = new Slots(c.concurrency);
    this.#attempts = new Attempts({
      slots: this.#slots,
      workerId: this.id,
      maxRetries: c.maxRetries,
      isolation: c.isolation,
      registry: () => this.#registry,
      threads: () => this.#threads,
      completer: this.#completer,
      support: { reports: this.#reports, cancelGrace: c.cancelGrace },
      recordStart: async (row) => (await recordStarts(this.#store.hotQueries, this.#store.tasks, this.id, [row])) === 1,
      accepting: () => this.#state === "running",
      slotFreed: (ms) => {
        this.#fetcher.slotFreed(ms);
        if (this.#slots.count === 0) this.#allSlotsFree();
      },
      shutdownTimeout: c.shutdownTimeout,
      logger: this.logger,
      signal: this.#signal,
      listening: this.#listening,
      report: (error, during, task) => this.#report(error, during, task),
    });
    this.#sweeper = new Sweeper({
      ...db,
      schema: this.#c.connection.schema,
      lock: this.#lock,
      notifier: this.#notifier,
      staleAfter: c.staleAfter,
      interval: c.sweepInterval,
      inContactSince: () => this.#contact.since(),
    });
    this.#fetcher = new Fetcher({
      slots: this.#slots,
      prefetch: c.prefetch,
      pollMs: c.pollInterval * 1000,
      claim: (limit) =>
        claimTasks(this.#store.claimConnection ?? this.#store.hotQueries, this.#store.tasks, {
          queues: this.queues,
          limit,
          workerId: this.id,
          defaultMaxRetries: c.maxRetries,
        }),
      claimConnections: () => this.#store.claimConnectionsOpened,
      start: (row) => this.#attempts.begin(row),
      track: (rows) => this.#heartbeat.track(rows),
      mayBeSwept: (claim) => this.#heartbeat.mayBeSwept(claim),
      release: (r) => this.#completer.release(r),
      held: () => this.#held(),
      contactLost: () => this.#contact.lost(),
      contactRestored: () => this.#contact.restored(),
      logger: this.logger,
      signal: this.#signal,
      limit: c.maxTasks,
      ...(this.#notifier.takeWakeTokens && {
        takeWakeTokens: (queue, max, dueAt) => this.#notifier.takeWakeTokens!(queue, max, dueAt),
        spendWakeTokens: (queue, claimed) => this.#notifier.spendWakeTokens?.(queue, claimed),
      }),
      quiet: () => this.#completer.pending === 0 && !this.#completer.writing,
      drained: (claim) => this.#idle(claim),
    });
    this.#metrics = c.metrics && this.#createMetrics(c.metrics);
    if (logsAt(this.logger, "debug")) logTaskEvents(this, this.logger);
  }

  #createMetrics(options: NonNullable<WorkerConfig["metrics"]>): WorkerMetrics {
    const store = this.#store;
    return new WorkerMetrics(
      {
        on: (event, listener) => this.on(event as WorkerEventName, listener as (...a: unknown[]) => void),
        knows: (name) => this.#registry.has(name),
        queues: () => this.queues,
        runningQueues: () => this.#slots.all().map((e) => e.row.queue),
        db: () => (this.#state === "running" ? store : null),
        logger: this.logger,
      },
      options,
    );
  }

  /**
   * This worker's metrics in Prometheus text format (see docs: skiplock_tasks, skiplock_tasks_processed_total,
   * skiplock_task_duration_seconds, skiplock_queue_oldest_due_seconds, skiplock_worker_running); with your own
   * `metrics.registry`, every metric in it. Rejects with InvalidOptionError for a worker made without `metrics`.
   */
  metrics(): Promise<string> {
    if (!this.#metrics) {
      return Promise.reject(
        new InvalidOptionError("metrics", "this worker was made without metrics: new Worker({ metrics: true, … })"),
      );
    }
    return this.#metrics.text();
  }

  /** The prom-client Registry holding this worker's metrics (null without `metrics`), e.g. for Registry.merge. */
  get metricsRegistry(): Registry | null {
    return this.#metrics?.registry ?? null;
  }

  /**
   * Calls each listener in turn, so that one that throws (or returns a rejected promise) neither breaks the worker
   * nor keeps the others from hearing the event: it is logged and reported as worker:error.
   */
  override emit<K>(
    eventName: K extends WorkerEventName ? K : WorkerEventName,
    ...args: K extends WorkerEventName ? WorkerEvents[K] : never
  ): boolean {
    const name = eventName as WorkerEventName;
    if (this.listenerCount(name) === 0) return false; // before rawListeners, which copies even an empty list
    for (const listener of this.rawListeners(name) as ((...a: unknown[]) => unknown)[]) {
      try {
        const r = listener.apply(this, args);
        if (r instanceof Promise) r.catch((err: unknown) => this.#listenerFailed(name, err, args[0]));
      } catch (err) {
        this.#listenerFailed(name, err, args[0]);
      }
    }
    return true;
  }

  #listenerFailed(name: WorkerEventName, err: unknown, data: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (name === "worker:error") {
      this.logger.error("a worker:error listener threw", { error: error.message });
      return;
    }
    // A task event's listener: the line names the task.
    const task = (data as { task?: RunningTask } | undefined)?.task;
    this.#report(error, `a ${name} listener`, task && taskFields(task));
  }

  /** A fault outside any one task's outcome: logged, and emitted as worker:error. The worker goes on. */
  #report(error: Error, during: string, task?: Record<string, unknown>): void {
    this.logger.error(`error in ${during}`, { worker: this.id, ...task, error: error.message });
    this.#signal("worker:error", { error, during });
  }

  /**
   * Runs until no task of the worker's queues is due (none claimable, none running, every outcome written) or
   * until `maxTasks` tasks ran, then stops as `stop()` does. Starts the worker if it was not started. For cron jobs and
   * serverless hosts: `run-worker --burst`.
   */
  async runUntilIdle(): Promise<void> {
    if (this.#state === "new") await this.start();
    if (this.#state === "running") {
      await new Promise<void>((resolve) => {
        // Only a claim sent from now on counts: one in flight may predate a task the caller just enqueued.
        this.#idleWaiters.push({ after: this.#fetcher.claimsSent, resolve });
        // A claim now, sent while nothing runs, tells whether anything is due.
        if (this.#slots.count === 0) this.#fetcher.wake();
      });
    }
    await this.stop();
  }

  /**
   * The last running attempt ended: with maxTasks spent, the worker stops; with a runUntilIdle waiting, a claim once
   * the outcomes are written tells whether anything is left (the outcome of a retry can make its task due at once).
   */
  #allSlotsFree(): void {
    if (this.#state !== "running" || this.#fetcher.holding > 0) return;
    if (this.#fetcher.exhausted) {
      this.#idle(Infinity);
      void this.stop();
    } else if (this.#idleWaiters.length > 0) {
      void this.#completer.whenIdle().then(() => this.#fetcher.wake());
    }
  }

  /** Claim number `claim` found nothing due: free the callers of runUntilIdle that were waiting before it was sent. */
  #idle(claim: number): void {
    const waiting = this.#idleWaiters;
    this.#idleWaiters = waiting.filter((w) => w.after >= claim);
    for (const w of waiting) if (w.after < claim) w.resolve();
  }

  /**
   * The queues this worker claims from: as given, or "default" plus every queue its registered definitions name
   * (known once the tasks module is loaded, at start).
   */
  get queues(): string[] {
    return this.#queues ?? queuesOf(this.#registry);
  }

  /** Tasks running now. */
  get running(): number {
    return this.#slots.count;
  }

  /** Every lease this worker holds: running, ready to start, or with its outcome not yet written. */
  /**
   * cancelTask asked to stop attempt `attempt` of task `id` (through Redis, or the heartbeat). Running here: its signal
   * fires. Claimed here and not started yet: it ends CANCELLED when its turn comes, without running. Elsewhere: not
   * this worker's to stop.
   */
  #cancelRequested(id: string, attempt: number): void {
    if (cancelRunning(this.#slots, id, attempt)) return;
    if (this.#fetcher.buffered.some((c) => c.id === id && c.attempt === attempt)) {
      this.#attempts.cancelBeforeStart(id, attempt);
    }
  }

  #held(): Claim[] {
    return [...this.#slots.all().map((e) => e.row), ...this.#fetcher.buffered, ...this.#completer.held()];
  }

  /**
   * Checks the database and schema (throwing DatabaseUnavailableError or SchemaNotReadyError), then starts
   * claiming. Resolves once the worker is running.
   */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`worker already ${this.#state}`);
    this.#state = "starting";
    notStopped.add(this);
    // Neither waits for Redis: connecting overlaps the database checks below.
    await this.#notifier.start();
    await this.#lock.start();
    this.#services.push(this.#notifier, this.#lock);
    let scheduler: Scheduler | null;
    try {
      ({ registry: this.#registry, threads: this.#threads } = await loadHandlers(
        this.#registry,
        this.#tasksModuleUrl,
        this.#c.isolation,
      ));
      if (this.#threads) this.#services.push(this.#threads);
      await this.#store.ping();
      await assertSchemaReady(this.#store.pool, this.#c.connection.schema);
      await warnIfNoAutovacuum(this.#store.pool, this.#c.connection.schema, this.logger);
      scheduler = await Scheduler.prepare(
        await declaredSchedules(this.#c.schedules, this.#tasksModuleUrl),
        (task) => this.#registry.has(task),
        {
          pool: this.#store.pool,
          q: this.#store.hotQueries,
          schema: this.#store.schema,
          notifier: this.#notifier,
          logger: this.logger,
          signal: this.#signal,
        },
      );
    } catch (err) {
      this.#state = "stopped";
      notStopped.delete(this);
      await Promise.all([this.#store.close(), ...this.#services.splice(0).map((s) => s.stop())]);
      throw err;
    }
    this.#queues ??= queuesOf(this.#registry);
    this.#listeners.push(
      this.#notifier.onWake(this.queues, (queue, _count, dueAt, tokens) => {
        if (dueAt !== undefined) this.#fetcher.wakeAt(dueAt, tokens ? queue : undefined);
        else if (tokens) this.#fetcher.wakeFor(queue);
        else this.#fetcher.wake();
      }),
      this.#notifier.onReconnect(() => this.#fetcher.wake()),
      this.#notifier.onCancel((id, attempt) => this.#cancelRequested(id, attempt)),
      this.#notifier.onStatus((status) => this.#signal(`redis:${status}`)),
    );
    await this.#notifier.ready(); // wake-ups sent from now on are heard
    this.#state = "running";
    this.#scheduleNames = scheduler?.names ?? [];
    const services: Service[] = [
      this.#presence,
      this.#heartbeat,
      this.#completer,
      this.#reports,
      this.#attempts,
      this.#sweeper,
      this.#fetcher,
    ];
    if (scheduler) services.push(scheduler);
    for (const service of services) {
      await service.start();
      this.#services.push(service);
    }
    const redisUrl = this.#store.embedded ? undefined : this.#c.connection.redisUrl;
    const redis = redisUrl ? (this.#notifier.connected ? "connected" : "unreachable") : "off";
    this.logger.info("worker started", {
      worker: this.id,
      queues: this.queues,
      concurrency: this.concurrency,
      tasks: [...this.#registry.keys()],
      isolation: this.#c.isolation,
      redis: this.#store.embedded
        ? "not used (embedded database: in-process doorbell)"
        : { connected: "connected", unreachable: "unreachable (polling until it answers)", off: "off (polling)" }[
            redis
          ],
    });
    this.#signal("worker:started", { workerId: this.id, queues: this.queues, redis });
  }

  /**
   * Stops claiming, lets running tasks finish for up to `shutdownTimeout` seconds, hands the rest back to the
   * queue (their signals fire), writes every outcome, and closes the connections. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.#stopPromise ??= this.#stop();
    return this.#stopPromise;
  }

  async #stop(): Promise<void> {
    if (this.#state === "new" || this.#state === "stopped") {
      this.#state = "stopped";
      notStopped.delete(this);
      await Promise.all([this.#store.close(), this.#notifier.stop(), this.#lock.stop()]);
      return;
    }
    this.#state = "stopping";
    this.#signal("worker:stopping", { running: this.#slots.count });
    for (const off of this.#listeners.splice(0)) off();
    // In reverse order of start: claiming ends first, connections last.
    for (const service of this.#services.splice(0).reverse()) await service.stop();
    await this.#store.close();
    this.#state = "stopped";
    notStopped.delete(this);
    this.logger.info("worker stopped", { worker: this.id });
    this.#signal("worker:stopped");
  }
}

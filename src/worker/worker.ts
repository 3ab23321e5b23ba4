import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import {
  DEFAULT_QUEUE,
  resolveConnection,
  validateInteger,
  validateQueueName,
  validateSeconds,
  type ConnectionConfig,
  type ConnectionOptions,
} from "../config.js";
import { assertSchemaReady } from "../db/migrate.js";
import { isTransientError } from "../db/errors.js";
import { Store } from "../db/store.js";
import { InvalidOptionError } from "../errors.js";
import { assertKnownKeys } from "../options.js";
import { consoleLogger, type Logger } from "../logger.js";
import { createNotifier, type Notifier } from "../notify/index.js";
import { RetryDelay } from "../retry-delay.js";
import { claimTasks } from "../sql/claim.js";
import type { Backoff } from "../sql/finish.js";
import type { ClaimedRow } from "../sql/claim.js";
import type { Claim } from "../task.js";
import { Completer } from "./completer.js";
import { contextData, InlineRunner, type Execution } from "./executor.js";
import type { Outcome } from "./outcome.js";
import { Heartbeat } from "./heartbeat.js";
import { ClusterLock } from "./lock.js";
import { buildRegistry, validateIsolation, type Isolation, type Registered, type TaskMap } from "./registry.js";
import { loadTasksModule, tasksModuleUrl } from "./tasks-module.js";
import { ThreadPool } from "./thread-pool.js";
import { Sweeper } from "./sweeper.js";
import { WakeTimer } from "./wake-timer.js";

export interface WorkerOptions extends ConnectionOptions {
  /** The handlers this worker runs: `{ name: fn }`, `{ key: defineTask(…) }` or an array of definitions. */
  tasks?: TaskMap;
  /**
   * Path of a module exporting the handlers (as `--tasks`), instead of or as well as `tasks`. Needed for thread
   * isolation: each task thread imports it.
   */
  tasksModule?: string;
  /**
   * "inline" (default): handlers run on the worker's main thread; a timeout fails the task and fires its signal,
   * but cannot stop code that never yields. "thread": each attempt runs in a worker thread that is terminated at
   * the timeout. Tasks defined with their own `isolation` keep it.
   */
  isolation?: Isolation;
  /** Most tasks running at once; default 1. */
  concurrency?: number;
  /** Retries for tasks enqueued without `maxRetries` (`--retry`); default 0. */
  maxRetries?: number;
  /** Queues to claim from; default "default" and every queue a registered defineTask names. */
  queues?: string[];
  /** Seconds between claims when no wake-up arrives (and the only pace without Redis); default 1. */
  pollInterval?: number;
  /** Seconds between heartbeats; default 5. */
  heartbeatInterval?: number;
  /** Seconds without a heartbeat after which a running task is taken back; default 30. */
  staleAfter?: number;
  /** Seconds between stale-task sweeps; default half of staleAfter. */
  sweepInterval?: number;
  /** Seconds `stop()` lets running tasks finish before handing them back; default 30. */
  shutdownTimeout?: number;
  /** Largest task result stored, in bytes of UTF-8 JSON; a larger one fails its task (PayloadTooLargeError). Default 32 MiB. */
  maxResultBytes?: number;
  /** Retry backoff in seconds: base * 2^retryCount, capped at max, with jitter; default { base: 1, max: 3600 }. */
  retryBackoff?: Partial<Backoff>;
  logger?: Logger;
  /** Identifies this worker in task rows and logs; default host:pid:random. */
  workerId?: string;
  /** Postgres connections for outcome writes and sweeps; default 4. Claims and the heartbeat have one each. */
  poolSize?: number;
  /**
   * Most claimed tasks held ready beyond the free slots, so a slot that frees starts its next task at once instead
   * of waiting for a claim round trip, and claims come in large batches; default 1024 (or `concurrency`, if larger).
   * The worker holds only as many as its slots will start within 50 ms at the pace tasks are finishing, so with
   * tasks that take seconds it holds none, and never hoards work another worker could start.
   */
  prefetch?: number;
}

/**
 * Hold no more claimed tasks than the slots will start within this many milliseconds at the current pace. With
 * no-op tasks this lets claims grow to the `prefetch` cap; measured on 2 cores, claims of up to 1,024 drained 20,000
 * tasks at 32–36k/s where claims of up to 256 gave 24–29k/s (graphile-worker with its batching preset: 27–29k/s in
 * the same runs).
 */
const PREFETCH_HORIZON_MS = 50;

const WORKER_OPTION_KEYS = [
  "databaseUrl",
  "redisUrl",
  "schema",
  "tasks",
  "tasksModule",
  "isolation",
  "concurrency",
  "maxRetries",
  "queues",
  "pollInterval",
  "heartbeatInterval",
  "staleAfter",
  "sweepInterval",
  "shutdownTimeout",
  "maxResultBytes",
  "retryBackoff",
  "logger",
  "workerId",
  "poolSize",
  "prefetch",
] as const satisfies readonly (keyof WorkerOptions)[];

/** A claimed row, with when it was claimed and which heartbeat-list update first named it (see #bufferTrusted). */
interface HeldRow extends ClaimedRow {
  claim: { sentAt: number; seq: number };
}

/**
 * Claims due tasks from Postgres and runs them. Composes the fetch loop (here), the executor, the completer
 * (batched outcome writes), the heartbeat thread and the stale-task sweeper. Never runs more than `concurrency`
 * tasks, and claims only as many as it has free slots, so it never sits on tasks another worker could start.
 */
export class Worker {
  readonly id: string;
  readonly config: ConnectionConfig;
  readonly concurrency: number;
  #queues: string[] | null;
  readonly logger: Logger;
  #registry: Map<string, Registered>;
  readonly #tasksModuleUrl: string | null;
  readonly #isolation: Isolation;
  #threads: ThreadPool | null = null;
  readonly #maxRetries: number;
  readonly #pollMs: number;
  readonly #heartbeatInterval: number;
  readonly #staleAfter: number;
  readonly #sweepInterval: number;
  readonly #shutdownMs: number;
  readonly #backoff: Backoff;
  readonly #store: Store;
  readonly #notifier: Notifier;
  readonly #lock: ClusterLock;
  readonly #completer: Completer;
  readonly #heartbeat: Heartbeat;
  readonly #sweeper: Sweeper;
  readonly #inline: InlineRunner;
  /**
   * The attempts running now, in slots reused as attempts come and go (a Map keyed by task id rehashed its table
   * every few attempts while tasks started and ended one by one); #free lists the empty slots.
   */
  readonly #running: (Execution | null)[] = [];
  readonly #free: number[] = [];
  #runningCount = 0;
  /** Whether #pump is on the stack (an attempt that finishes synchronously must not start another from within). */
  #pumping = false;
  /** Claimed, not yet started (see `prefetch`). */
  #buffer: HeldRow[] = [];
  /** Index of the next task to start in #buffer (a queue read from the front without shifting the array). */
  #bufferHead = 0;
  readonly #maxPrefetch: number;
  /** Moving average of attempt durations in ms; Infinity until the first one ends. */
  #avgMs = Infinity;
  #state: "new" | "starting" | "running" | "stopping" | "stopped" = "new";
  #loopDone: Promise<void> = Promise.resolve();
  #stopPromise: Promise<void> | null = null;
  /** Whether the last look at the queue suggested more due tasks than were claimed. */
  #maybeWork = true;
  #wakeLoop: (() => void) | null = null;
  /** store.claimConnectionsOpened at the last claim. */
  #claimConnectionsSeen = 0;
  /** Leases held when the claim connection was last replaced, while any of them is still held (see #dropReclaimed). */
  #leasesBeforeReconnect: Set<string> | null = null;
  #slotWakePending = false;
  #offWake: (() => void) | null = null;
  #offReconnect: (() => void) | null = null;
  #dbFailing = false;
  readonly #dbRetry = new RetryDelay();
  #drained: (() => void) | null = null;
  readonly #timedWake = new WakeTimer(() => this.#wake());
  /** Epoch ms since which this worker's contact with Postgres has been unbroken (0: never broken). */
  #contactSince = 0;
  #contactBroken = false;

  constructor(options: WorkerOptions) {
    assertKnownKeys("new Worker", options, WORKER_OPTION_KEYS);
    if (!options || typeof options !== "object" || (!options.tasks && !options.tasksModule)) {
      throw new InvalidOptionError(
        "tasks",
        "a Worker needs the handlers it runs: new Worker({ tasks: { name: fn } }) or { tasksModule: path }",
      );
    }
    this.config = resolveConnection(options);
    this.#registry = options.tasks ? buildRegistry(options.tasks) : new Map();
    this.#tasksModuleUrl = options.tasksModule ? tasksModuleUrl(options.tasksModule) : null;
    this.#isolation = validateIsolation(options.isolation) ?? "inline";
    this.concurrency = validateInteger("concurrency", options.concurrency ?? 1, 1, 10_000);
    this.#maxRetries = validateInteger("maxRetries", options.maxRetries ?? 0, 0, 1_000_000);
    const queues = options.queues;
    if (queues !== undefined && (!Array.isArray(queues) || queues.length === 0)) {
      throw new InvalidOptionError("queues", "give at least one queue");
    }
    this.#queues = queues ? [...new Set(queues.map(validateQueueName))] : null;
    this.#pollMs = validateSeconds("pollInterval", options.pollInterval ?? 1, 0.01) * 1000;
    this.#heartbeatInterval = validateSeconds("heartbeatInterval", options.heartbeatInterval ?? 5, 0.05);
    this.#staleAfter = validateSeconds("staleAfter", options.staleAfter ?? 30, 0.1);
    if (this.#staleAfter < 2 * this.#heartbeatInterval) {
      throw new InvalidOptionError(
        "staleAfter",
        `must be at least twice heartbeatInterval (${this.#heartbeatInterval} s), or live tasks would be swept`,
      );
    }
    this.#maxPrefetch = validateInteger("prefetch", options.prefetch ?? Math.max(1024, this.concurrency), 0, 100_000);
    this.#sweepInterval = validateSeconds("sweepInterval", options.sweepInterval ?? this.#staleAfter / 2, 0.05);
    this.#shutdownMs = validateSeconds("shutdownTimeout", options.shutdownTimeout ?? 30) * 1000;
    this.#backoff = {
      base: validateSeconds("retryBackoff.base", options.retryBackoff?.base ?? 1),
      max: validateSeconds("retryBackoff.max", options.retryBackoff?.max ?? 3600),
    };
    this.logger = options.logger ?? consoleLogger();
    this.id = options.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

    this.#store = new Store({
      databaseUrl: this.config.databaseUrl,
      schema: this.config.schema,
      poolSize: options.poolSize ?? 4,
      applicationName: `skiplock worker ${this.id}`,
      // A claim or outcome write that gets no answer (a connection gone silent) fails and is retried on a fresh one.
      queryTimeout: 30_000,
      claimConnection: true,
    });
    this.#notifier = createNotifier({
      redisUrl: this.config.redisUrl,
      schema: this.config.schema,
      logger: this.logger,
    });
    this.#lock = new ClusterLock(this.config.redisUrl);
    this.#completer = new Completer(
      this.#store.hotQueries,
      this.#store.tasks,
      this.id,
      this.#notifier,
      this.logger,
      this.#backoff,
      {
        maxResultBytes: options.maxResultBytes,
      },
    );
    this.#heartbeat = new Heartbeat({
      databaseUrl: this.config.databaseUrl,
      tasks: this.#store.tasks,
      workerId: this.id,
      interval: this.#heartbeatInterval,
      grace: this.#staleAfter,
      logger: this.logger,
      held: () => this.#held(),
      onFailing: () => this.#contactLost(),
      onRestored: () => this.#contactRestored(),
    });
    this.#inline = new InlineRunner(this.id, this.#maxRetries, this.#finished);
    this.#sweeper = new Sweeper({
      q: this.#store.hotQueries,
      tasks: this.#store.tasks,
      schema: this.config.schema,
      lock: this.#lock,
      notifier: this.#notifier,
      logger: this.logger,
      staleAfter: this.#staleAfter,
      interval: this.#sweepInterval,
      inContactSince: () => (this.#contactBroken ? Date.now() : this.#contactSince),
    });
  }

  /**
   * The queues this worker claims from: as given, or "default" plus every queue its registered definitions name
   * (known once the tasks module is loaded, at start).
   */
  get queues(): string[] {
    return this.#queues ?? this.#defaultQueues();
  }

  #defaultQueues(): string[] {
    const queues = new Set([DEFAULT_QUEUE]);
    for (const r of this.#registry.values()) if (r.queue !== undefined) queues.add(r.queue);
    return [...queues];
  }

  /** Tasks running now. */
  get running(): number {
    return this.#runningCount;
  }

  #runningNow(): Execution[] {
    return this.#running.filter((e): e is Execution => e !== null);
  }

  /** Every lease this worker holds: running, ready to start, or with its outcome not yet written. */
  #held(): Claim[] {
    // Claimed rows are claims (id, attempt) as they are.
    return [
      ...this.#runningNow().map((e) => e.row),
      ...this.#buffer.slice(this.#bufferHead),
      ...this.#completer.held(),
    ];
  }

  /**
   * A claim that a crash of the Postgres server undid (claims do not wait for the WAL flush) left its task PENDING
   * with its former attempt, while this worker may still be running it: claimed again by this worker, it comes
   * back with the very lease already held here. Such a row is not started a second time; the run already under
   * way keeps the lease and writes the outcome. Only checked after the claim connection was replaced (the crash
   * took it), and only until none of the leases held then is left.
   */
  #dropReclaimed(rows: ClaimedRow[]): ClaimedRow[] {
    const connections = this.#store.claimConnectionsOpened;
    const replaced = connections !== this.#claimConnectionsSeen && this.#claimConnectionsSeen > 0;
    this.#claimConnectionsSeen = connections;
    if (!replaced && !this.#leasesBeforeReconnect) return rows;
    const held = new Set(this.#held().map(leaseKey));
    if (replaced) this.#leasesBeforeReconnect = new Set(held);
    const before = this.#leasesBeforeReconnect!;
    for (const k of before) if (!held.has(k)) before.delete(k);
    if (before.size === 0) this.#leasesBeforeReconnect = null;
    return rows.filter((row) => {
      if (!held.has(leaseKey(row))) return true;
      this.logger.warn(
        "claimed a task this worker is already running (its first claim was lost); not starting it twice",
        {
          task: row.id,
          attempt: row.attempt,
        },
      );
      return false;
    });
  }

  /**
   * Checks the database and schema (throwing DatabaseUnavailableError or SchemaNotReadyError), then starts
   * claiming. Resolves once the worker is running.
   */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`worker already ${this.#state}`);
    this.#state = "starting";
    try {
      if (this.#tasksModuleUrl && this.#registry.size === 0) {
        this.#registry = buildRegistry(await loadTasksModule(this.#tasksModuleUrl));
      }
      const threaded =
        this.#isolation === "thread" || [...this.#registry.values()].some((r) => r.isolation === "thread");
      if (threaded) {
        if (!this.#tasksModuleUrl) {
          throw new InvalidOptionError(
            "isolation",
            "thread isolation needs tasksModule: the module each thread imports",
          );
        }
        this.#threads = new ThreadPool(this.#tasksModuleUrl);
      }
      await this.#store.ping();
      await assertSchemaReady(this.#store.pool, this.config.schema);
      await this.#checkVacuum();
    } catch (err) {
      this.#state = "stopped";
      await Promise.all([this.#store.close(), this.#notifier.close(), this.#lock.close()]);
      throw err;
    }
    this.#queues ??= this.#defaultQueues();
    this.#heartbeat.start();
    this.#offWake = this.#notifier.onWake(this.queues, (_queue, _count, dueAt) =>
      dueAt === undefined ? this.#wake() : this.#wakeAt(dueAt),
    );
    this.#offReconnect = this.#notifier.onReconnect(() => this.#wake());
    await this.#notifier.ready(); // wake-ups sent from now on are heard
    this.#sweeper.start();
    this.#state = "running";
    this.#loopDone = this.#loop();
    this.logger.info("worker started", {
      worker: this.id,
      queues: this.queues,
      concurrency: this.concurrency,
      tasks: [...this.#registry.keys()],
      isolation: this.#isolation,
      redis: this.config.redisUrl
        ? this.#notifier.connected
          ? "connected"
          : "unreachable (polling until it answers)"
        : "off (polling)",
    });
  }

  /**
   * Every claim and completion leaves a dead row version behind in the live partition; without vacuum the claim
   * index fills with them and the partition only grows. Say so once, at start, if nothing will clean up.
   */
  async #checkVacuum(): Promise<void> {
    const { rows } = await this.#store.pool.query<{ server: string; table: string[] | null }>({
      text: `SELECT current_setting('autovacuum') AS server,
                    (SELECT reloptions FROM pg_class WHERE oid = to_regclass($1)) AS table`,
      values: [`"${this.config.schema}".tasks_live`],
    });
    const off = rows[0]?.server !== "on" || (rows[0]?.table ?? []).includes("autovacuum_enabled=false");
    if (off) {
      this.logger.warn(
        "autovacuum is off for the tasks table: dead row versions will pile up and claims slow down; " +
          "turn autovacuum on, or VACUUM the tasks table on a schedule",
        { schema: this.config.schema },
      );
    }
  }

  /** A wake-up from Redis, a reconnect, or the poll timer: there may be due tasks. */
  #wake(): void {
    this.#maybeWork = true;
    this.#wakeLoop?.();
  }

  /** Tasks become due at `at` (epoch ms): wake then. */
  #wakeAt(at: number): void {
    this.#timedWake.add(at);
  }

  #contactLost(): void {
    this.#contactBroken = true;
  }

  #contactRestored(): void {
    if (!this.#contactBroken) return;
    this.#contactBroken = false;
    this.#contactSince = Date.now();
  }

  /** A slot freed: claim again if the last claim suggested more work, after letting other finishes coalesce. */
  #slotFreed(): void {
    if (this.#runningCount === 0) this.#drained?.();
    if (!this.#maybeWork || this.#slotWakePending) return;
    this.#slotWakePending = true;
    setImmediate(() => {
      this.#slotWakePending = false;
      this.#wakeLoop?.();
    });
  }

  /** How many claimed-but-unstarted tasks to hold right now. */
  #prefetchTarget(): number {
    if (this.#avgMs === Infinity) return 0;
    // As many as the slots will start within PREFETCH_HORIZON_MS at the current pace.
    const n = Math.floor((PREFETCH_HORIZON_MS * this.concurrency) / Math.max(this.#avgMs, 0.001));
    return Math.min(this.#maxPrefetch, n);
  }

  async #loop(): Promise<void> {
    while (this.#state === "running") {
      const capacity = this.concurrency + this.#prefetchTarget();
      const held = this.#buffer.length - this.#bufferHead;
      const want = capacity - this.#runningCount - held;
      // Claim when slots are idle, or (while tasks ready to start remain) once half the capacity is missing, so
      // claims come in sizeable batches rather than one row per freed slot.
      const due = held === 0 ? this.#runningCount < this.concurrency : want >= Math.ceil(capacity / 2);
      if (want > 0 && due && this.#maybeWork) {
        this.#maybeWork = false;
        let rows: ClaimedRow[];
        const sentAt = Date.now();
        try {
          rows = await claimTasks(this.#store.claimConnection!, this.#store.tasks, {
            queues: this.queues,
            limit: want,
            // Rows for the slots free now start at once; the rest are prefetched, not yet started (see claim.ts).
            startNow: Math.max(0, this.concurrency - this.#runningCount - held),
            workerId: this.id,
            defaultMaxRetries: this.#maxRetries,
          });
          this.#dbRecovered();
        } catch (err) {
          this.#maybeWork = true;
          await this.#dbFailed(err);
          continue;
        }
        // A full batch means the queue may hold more; a short one means it is drained for now (unless a wake-up
        // arrived while the claim was in flight: it set #maybeWork again).
        if (rows.length === want) this.#maybeWork = true;
        rows = this.#dropReclaimed(rows);
        // Started rows leave the array here, or it would keep every row claimed since it was last empty.
        this.#buffer = this.#bufferHead > 0 ? this.#buffer.slice(this.#bufferHead) : this.#buffer;
        this.#bufferHead = 0;
        const claim = { sentAt, seq: this.#heartbeat.track(rows) };
        for (const row of rows as HeldRow[]) {
          row.claim = claim;
          this.#buffer.push(row);
        }
        if (this.#state !== "running") break;
        this.#pump();
        if (this.#maybeWork && this.#runningCount < this.concurrency) continue;
      }
      await this.#idle();
    }
  }

  /** Starts held tasks while slots are free. */
  #pump(): void {
    if (this.#pumping) return; // the loop below is already running and will fill the freed slot
    this.#pumping = true;
    try {
      while (
        this.#runningCount < this.concurrency &&
        this.#bufferHead < this.#buffer.length &&
        this.#state === "running"
      ) {
        const row = this.#buffer[this.#bufferHead]!;
        if (!row.started && !this.#bufferTrusted(row)) {
          this.#handBackBuffer();
          break;
        }
        this.#bufferHead++;
        this.#start(row);
        if (!row.started) this.#completer.started(row);
      }
    } finally {
      this.#pumping = false;
    }
    if (this.#bufferHead === this.#buffer.length && this.#bufferHead > 0) {
      this.#buffer = [];
      this.#bufferHead = 0;
    }
  }

  /**
   * Whether a prefetched row is still surely this worker's: its heartbeat (or its claim) is recent enough that no
   * sweep can have taken it. After a gap in contact with Postgres (a network cut, an outage) it may have been swept
   * and run elsewhere; starting it then would run it twice.
   */
  #bufferTrusted(row: HeldRow): boolean {
    return !this.#heartbeat.mayBeSwept(row.claim);
  }

  /** Hands every prefetched row back (compare-and-set: rows swept meanwhile are left alone) and claims afresh. */
  #handBackBuffer(): void {
    const rows = this.#buffer.slice(this.#bufferHead);
    this.logger.warn("prefetched tasks may have been swept while Postgres was out of reach; handing them back", {
      tasks: rows.length,
    });
    for (const row of rows) this.#completer.release({ id: row.id, attempt: row.attempt, started: false });
    this.#buffer = [];
    this.#bufferHead = 0;
    this.#wake();
  }

  /** Waits for a wake-up, a freed slot (when work may remain) or the poll interval. */
  #idle(): Promise<void> {
    return this.#pause(this.#pollMs, true);
  }

  /**
   * Waits `ms`, after which the queue is worth another look. stop() always cuts the wait short; a wake-up does too
   * when `wakeable`.
   */
  #pause(ms: number, wakeable: boolean): Promise<void> {
    if (this.#state !== "running") return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wakeLoop = null;
        resolve();
      };
      const timer = setTimeout(() => {
        this.#maybeWork = true;
        done();
      }, ms);
      this.#wakeLoop = wakeable ? done : () => this.#state !== "running" && done();
    });
  }

  #dbRecovered(): void {
    this.#dbRetry.reset();
    if (this.#dbFailing) {
      this.#dbFailing = false;
      this.#contactRestored();
      this.logger.info("Postgres connection restored");
    }
  }

  async #dbFailed(err: unknown): Promise<void> {
    const transient = isTransientError(err);
    if (!this.#dbFailing || !transient) {
      this.logger[transient ? "warn" : "error"]("claim failed; retrying with backoff", {
        error: (err as Error).message,
      });
    }
    this.#dbFailing = true;
    if (transient) this.#contactLost();
    await this.#pause(this.#dbRetry.next(), false);
  }

  #start(row: ClaimedRow): void {
    const reg = this.#registry.get(row.name);
    if (reg && this.#threads && (reg.isolation ?? this.#isolation) === "thread") {
      this.#track(this.#threads.run(row, contextData(row, this.id, this.#maxRetries), this.#finished));
    } else {
      // Registered before it starts: a synchronous handler reports its outcome from within start().
      const exec = this.#inline.prepare(row, reg?.handler);
      this.#track(exec);
      exec.start();
    }
  }

  #track(exec: Execution): void {
    const slot = this.#free.pop() ?? this.#running.length;
    this.#running[slot] = exec;
    exec.slot = slot;
    this.#runningCount++;
  }

  /** An attempt ended: free its slot, start the next held task, and hand the outcome to the completer. */
  readonly #finished = (exec: Execution, outcome: Outcome): void => {
    const row = exec.row;
    if (exec.slot < 0 || this.#running[exec.slot] !== exec) return; // reported twice: ignore
    this.#running[exec.slot] = null;
    this.#free.push(exec.slot);
    exec.slot = -1;
    this.#runningCount--;
    if (outcome.kind !== "released") {
      const ms = outcome.duration * 1000;
      this.#avgMs = this.#avgMs === Infinity ? ms : this.#avgMs * 0.9 + ms * 0.1;
    }
    this.#pump();
    switch (outcome.kind) {
      case "completed":
        this.#completer.complete({
          id: row.id,
          attempt: row.attempt,
          resultJson: outcome.resultJson,
          duration: outcome.duration,
        });
        break;
      case "failed":
        this.logger.warn("task attempt failed", {
          task: row.id,
          name: row.name,
          attempt: row.attempt,
          error: outcome.error.split("\n", 1)[0],
        });
        this.#completer.fail({
          id: row.id,
          attempt: row.attempt,
          error: outcome.error,
          duration: outcome.duration,
          final: outcome.final,
        });
        break;
      case "released":
        this.#completer.release({ id: row.id, attempt: row.attempt, started: true });
        break;
    }
    this.#slotFreed();
  };

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
      await Promise.all([this.#store.close(), this.#notifier.close(), this.#lock.close()]);
      return;
    }
    this.#state = "stopping";
    this.#wakeLoop?.();
    await this.#loopDone;
    // Held tasks never started: back to the queue at once, for other workers.
    for (const row of this.#buffer.slice(this.#bufferHead)) {
      this.#completer.release({ id: row.id, attempt: row.attempt, started: false });
    }
    this.#buffer = [];
    this.#bufferHead = 0;
    this.#offWake?.();
    this.#offReconnect?.();
    this.#timedWake.clear();
    await this.#sweeper.stop();
    if (this.#runningCount > 0) {
      this.logger.info("waiting for running tasks", {
        running: this.#runningCount,
        timeoutSeconds: this.#shutdownMs / 1000,
      });
      const drained = new Promise<void>((resolve) => (this.#drained = resolve));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([drained, new Promise((resolve) => (timer = setTimeout(resolve, this.#shutdownMs)))]);
      clearTimeout(timer);
      if (this.#runningCount > 0) {
        const ids = this.#runningNow().map((e) => e.row.id);
        this.logger.warn("shutdown timeout: handing unfinished tasks back to the queue", { tasks: ids });
        for (const exec of this.#runningNow()) exec.release();
        // Inline attempts report "released" at once; threaded ones on the next turn.
        await drained;
      }
    }
    if (!(await this.#completer.drain(10_000))) {
      this.logger.error("could not record every task outcome before exit; the sweeper will take those tasks back");
    }
    this.#inline.close();
    await this.#heartbeat.stop();
    await Promise.all([this.#threads?.close(), this.#lock.close(), this.#notifier.close(), this.#store.close()]);
    this.#state = "stopped";
    this.logger.info("worker stopped", { worker: this.id });
  }
}

function leaseKey(c: Claim): string {
  return `${c.id}:${c.attempt}`;
}

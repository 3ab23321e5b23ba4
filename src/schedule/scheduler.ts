import type pg from "pg";
import { isTransientError } from "../db/errors.js";
import type { Queryable } from "../db/statements.js";
import { quoteIdent } from "../db/store.js";
import { InvalidOptionError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Notifier } from "../notify/index.js";
import { reconcileSchedules } from "../sql/schedule-reconcile.js";
import { enqueueScheduleTick, readScheduleState, storeScheduleNextTick } from "../sql/schedule-ticks.js";
import type { Signal } from "../worker/events.js";
import { workerClock } from "./clock.js";
import { nextTick, resolveSchedules, type ResolvedSchedule, type Schedule } from "./definition.js";

/*
 * The scheduler a worker runs when it declares schedules. Its states: "new" → start() reconciled the stored schedules
 * and ran the first check → "running" (a timer until the next check) → stop() → "stopped". A check reads the
 * database's clock and the schedules' stored state, enqueues each due tick (one statement each, oldest first), and
 * sleeps until the next tick by the database's clock, at most MAX_SLEEP_MS. See docs/architecture.md, Schedules.
 */

/** The longest sleep between checks: how soon a worker notices a resumed schedule or a clock that jumped. */
const MAX_SLEEP_MS = 5000;
/** Wake this much after a tick, so the database's clock has passed it even with the offset measured a little off. */
const AFTER_TICK_MS = 3;
/** The first retry after a failed check; doubled up to MAX_SLEEP_MS while they keep failing. */
const RETRY_MS = 250;

export interface SchedulerOptions {
  /** For the reconciling transaction. */
  pool: pg.Pool;
  /** For checks and ticks. */
  q: Queryable;
  /** The schema's name (validated). */
  schema: string;
  schedules: ResolvedSchedule[];
  notifier: Notifier;
  logger: Logger;
  signal: Signal;
  /** The worker's clock in epoch ms (see clock.ts). */
  clock?: () => number;
}

/** The schedules a worker declares: `schedules` as given, else the `schedules` export of its tasks module, if any. */
export async function declaredSchedules(
  given: readonly Schedule[] | undefined,
  tasksModuleUrl: string | null,
): Promise<{ declared: unknown; where: string } | null> {
  if (given !== undefined) return { declared: given, where: "schedules" };
  if (!tasksModuleUrl) return null;
  // The tasks module is loaded already (loadHandlers): this import returns the same module instance.
  const mod = (await import(tasksModuleUrl)) as { schedules?: unknown };
  if (mod.schedules === undefined) return null;
  if (!Array.isArray(mod.schedules)) {
    throw new InvalidOptionError("schedules", "the tasks module's `schedules` export must be an array of schedules");
  }
  return { declared: mod.schedules, where: "schedules" };
}

export class Scheduler {
  readonly #o: SchedulerOptions;
  readonly #schema: string;
  readonly #names: string[];
  readonly #clock: () => number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;
  /** Database time of this process's last successful check: ticks after it fell due while it was running. */
  #lastCheck: number | null = null;
  /** Database clock minus this worker's, measured at each check. */
  #offsetMs = 0;
  #retryMs = RETRY_MS;
  readonly #warned = new Set<string>();

  constructor(options: SchedulerOptions) {
    this.#o = options;
    this.#schema = quoteIdent(options.schema);
    this.#names = options.schedules.map((s) => s.name);
    this.#clock = options.clock ?? workerClock();
  }

  /**
   * Checks the declared schedules (throws InvalidScheduleError on the first bad one) and reconciles the table with
   * them, before the worker starts: a worker with a bad schedule does not start. Null when the worker declares none.
   */
  static async prepare(
    declared: Awaited<ReturnType<typeof declaredSchedules>>,
    registered: (task: string) => boolean,
    options: Omit<SchedulerOptions, "schedules">,
  ): Promise<Scheduler | null> {
    if (!declared) return null;
    const schedules = resolveSchedules(declared.declared, registered, declared.where);
    const scheduler = new Scheduler({ ...options, schedules });
    const removed = await reconcileSchedules(options.pool, scheduler.#schema, options.schema, schedules);
    options.logger.info("schedules reconciled", { declared: scheduler.#names, removed });
    options.signal("schedules:reconciled", { declared: scheduler.#names, removed });
    return scheduler;
  }

  /** The names of the schedules this scheduler runs. */
  get names(): readonly string[] {
    return this.#names;
  }

  /** Runs the first check (enqueueing the missed ticks within each schedule's backfill), then keeps checking. */
  async start(): Promise<void> {
    if (this.#names.length === 0) return;
    await this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
  }

  #run(): Promise<void> {
    this.#timer = null;
    this.#running = this.#check().then(
      (sleepMs) => {
        this.#retryMs = RETRY_MS;
        this.#sleep(sleepMs);
      },
      (err: Error) => {
        // Ticks that fall due while this process cannot reach Postgres count as missed: after it, only `backfill`.
        this.#lastCheck = null;
        const level = isTransientError(err) ? "warn" : "error";
        this.#o.logger[level]("schedule check failed", { error: err.message });
        this.#o.signal("worker:error", { error: err, during: "schedule check" });
        this.#sleep(this.#retryMs);
        this.#retryMs = Math.min(this.#retryMs * 2, MAX_SLEEP_MS);
      },
    );
    return this.#running;
  }

  #sleep(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#run(), ms);
    this.#timer.unref();
  }

  /** One check; returns how long to sleep before the next. */
  async #check(): Promise<number> {
    const { q, notifier, signal } = this.#o;
    const before = this.#clock();
    const { now, states } = await readScheduleState(q, this.#schema, this.#names);
    const after = this.#clock();
    const dbNow = now.getTime();
    this.#offsetMs = dbNow - (before + after) / 2;
    const since = this.#lastCheck;
    let soonest = Infinity;
    for (const s of this.#o.schedules) {
      if (this.#stopped) break;
      const next = nextTick(s, now);
      if (next) soonest = Math.min(soonest, next.getTime());
      const st = states.get(s.name);
      if (!st || st.paused || st.removed_at !== null) continue;
      if (st.cron !== s.cron || st.timezone !== s.timezone) {
        this.#warnOnce(s, st);
        continue;
      }
      // Due: after the cursor, and after this process's last check, or (first check, or contact lost since) within
      // `backfill` of now. Oldest first: the cursor refuses a tick older than one enqueued.
      const from = Math.max(st.ticks_after.getTime(), since ?? dbNow - s.backfill * 1000);
      let due = false;
      for (let t = nextTick(s, new Date(from)); t !== null && t.getTime() <= dbNow && !this.#stopped;) {
        due = true;
        const following = nextTick(s, t);
        const p = { name: s.name, cron: s.cron, timezone: s.timezone, tick: t, next: following };
        const task = await enqueueScheduleTick(q, this.#schema, p);
        if (task) {
          notifier.publishWake(task.queue, 1);
          signal("schedule:enqueued", { name: s.name, tick: t, taskId: task.id, backfill: since === null });
        }
        t = following;
      }
      // A tick's statement stores the next tick; with none due, store it here when it changed (start, resume).
      if (!due && (st.next_tick?.getTime() ?? null) !== (next?.getTime() ?? null)) {
        await storeScheduleNextTick(q, this.#schema, { name: s.name, cron: s.cron, timezone: s.timezone, next });
      }
    }
    this.#lastCheck = dbNow;
    const estimatedDbNow = this.#clock() + this.#offsetMs;
    const sleepMs = Math.max(0, Math.min(MAX_SLEEP_MS, soonest - estimatedDbNow + AFTER_TICK_MS));
    signal("schedule:checked", { now, offsetMs: this.#offsetMs, sleepMs });
    return sleepMs;
  }

  #warnOnce(s: ResolvedSchedule, st: { cron: string; timezone: string }): void {
    if (this.#warned.has(s.name)) return;
    this.#warned.add(s.name);
    this.#o.logger.warn(
      "schedule is stored with another definition (a worker with other code started later): not enqueueing it",
      {
        schedule: s.name,
        declared: { cron: s.cron, timezone: s.timezone },
        stored: { cron: st.cron, timezone: st.timezone },
      },
    );
  }
}

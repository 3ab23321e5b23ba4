import { isTransientError } from "../db/errors.js";
import { RetryDelay } from "../retry-delay.js";
import type { Logger } from "../logger.js";
import { taskFields } from "./task-log.js";
import type { ClaimedRow } from "../sql/claim.js";
import type { Release } from "../sql/release.js";
import type { Claim } from "../task.js";
import type { Signal } from "./events.js";
import type { BeatMark } from "./heartbeat.js";
import type { Slots } from "./slots.js";
import { WakeTimer } from "./wake-timer.js";

/*
 * The claim loop and its prefetch buffer. States and the moves between them:
 *
 *   idle      -> claiming   a wake-up (Redis, a due time, a reconnect), the poll timer, or a freed slot while the
 *                           last claim suggested more work; a Redis wake-up with tokens only once one was taken
 *   claiming  -> claiming   a full batch came back and a slot is still free
 *   claiming  -> idle       the rows are in the buffer and the free slots started
 *   claiming  -> backoff    the claim failed; backoff -> claiming after 0.1–5 s with jitter
 *   any       -> stopped    stop(); the buffer's rows go back to the worker, unstarted
 *
 * It claims for the free slots plus a prefetch (see docs/architecture.md, "Prefetch"), starts held rows as slots
 * free, and hands the buffer back when its leases may have been swept.
 */

/**
 * Hold no more claimed tasks than the slots will start within this many milliseconds at the current pace. With
 * no-op tasks this lets claims grow to the `prefetch` cap (claims of up to 1,024 drained at 32–36k/s where 256 gave
 * 24–29k/s on 2 cores).
 */
const PREFETCH_HORIZON_MS = 50;

/**
 * After a claim at a due time came back empty, look again this many ms later, step by step: the database decides
 * what is due by its own clock, which may run behind this host's by some milliseconds (more without NTP). Beyond
 * the last step (about 0.35 s in all) the task waits for the poll. One chain at a time, so at most a handful of
 * extra claims a second, even for a worker that loses every race for delayed tasks to other workers.
 */
const LOOK_AGAIN_MS = [5, 20, 80, 250];

export interface FetcherOptions {
  slots: Slots;
  /** Most rows held beyond the free slots. */
  prefetch: number;
  /** Milliseconds between claims when nothing wakes the loop. */
  pollMs: number;
  claim: (limit: number) => Promise<ClaimedRow[]>;
  /** How many connections the claims have opened so far (a new one means the last one died). */
  claimConnections: () => number;
  /** Starts a row's attempt in a free slot. */
  start: (row: ClaimedRow) => void;
  /** Adds claimed rows to the heartbeat's list; returns the list update that named them. */
  track: (rows: ClaimedRow[]) => number;
  mayBeSwept: (claim: BeatMark) => boolean;
  release: (r: Release) => void;
  /** Every lease the worker holds (to spot a claim of one it already runs). */
  held: () => Claim[];
  contactLost: () => void;
  contactRestored: () => void;
  logger: Logger;
  signal: Signal;
  /** Most attempts to start in all (the worker's maxTasks): claims never take more than that; null: no limit. */
  limit?: number | null;
  /**
   * Takes up to `max` wake tokens of `queue` (Notifier.takeWakeTokens); absent: every wake-up claims. See
   * docs/architecture.md, "Wake-ups that do not stampede".
   */
  takeWakeTokens?: (queue: string, max: number, dueAt?: number) => Promise<number>;
  /** A claim returned `claimed` rows of `queue` beyond the tokens taken for them (Notifier.spendWakeTokens). */
  spendWakeTokens?: (queue: string, claimed: number) => void;
  /** Whether nothing outside the fetcher is in flight (no outcome waiting to be written), for `drained`. */
  quiet?: () => boolean;
  /**
   * Called when a claim sent while nothing ran, nothing was held and `quiet()` said so came back empty: no task of
   * the worker's queues is due (runUntilIdle, `--burst`). `claim` numbers the claim (see claimsSent), so a caller can
   * tell an answer to a claim sent after it began waiting from one sent before a task it just enqueued committed.
   */
  drained?: (claim: number) => void;
}

export class Fetcher {
  readonly #o: FetcherOptions;
  readonly #slots: Slots;
  #state: "new" | "running" | "stopped" = "new";
  #done: Promise<void> = Promise.resolve();
  /** Claimed, not yet started; read from #head on without shifting the array. */
  #buffer: ClaimedRow[] = [];
  /**
   * For each row of #buffer, when its claim was sent and which heartbeat-list update named it. Kept beside the rows,
   * not on them: a property added to the driver's row objects changed their shape, and every read of a row field on
   * the hot path became polymorphic (3–4 µs a task in a drain).
   */
  #marks: BeatMark[] = [];
  #head = 0;
  /** Whether #pump is on the stack (an attempt that finishes synchronously must not start another from within). */
  #pumping = false;
  /** Moving average of attempt durations in ms; Infinity until the first one ends. */
  #avgMs = Infinity;
  /** Whether the last look at the queue suggested more due tasks than were claimed. */
  #maybeWork = true;
  #wakeLoop: (() => void) | null = null;
  #slotWakePending = false;
  #failing = false;
  readonly #retry = new RetryDelay();
  /** claimConnections() at the last claim. */
  #connectionsSeen = 0;
  /** Leases held when the claim connection was last replaced, while any of them is still held (see #dropReclaimed). */
  #leasesBeforeReconnect: Set<string> | null = null;
  readonly #dueTimes = new WakeTimer((passed) => this.#dueTimesPassed(passed));
  /** Due times announced with wake tokens, and the queues whose counters for that time hold them. */
  readonly #dueTokens = new Map<number, Set<string>>();
  /** Due times announced without tokens (an older publisher): any worker that hears one claims when it comes. */
  readonly #dueOpen = new Set<number>();
  /** Whether a due time (or a look again after one) woke the loop since its last claim. */
  #timedWake = false;
  /** The step of LOOK_AGAIN_MS the next look again takes. */
  #lookStep = 0;
  #lookTimer: NodeJS.Timeout | null = null;
  /** Rows started so far, against `limit`. */
  #started = 0;
  /** Claims sent so far. */
  #claimsSent = 0;
  /** Wake tokens taken per queue since the last claim was sent (see wakeFor). */
  #tokens = new Map<string, number>();

  constructor(options: FetcherOptions) {
    this.#o = options;
    this.#slots = options.slots;
  }

  /** Claims sent so far: the number the next one gets, less one. */
  get claimsSent(): number {
    return this.#claimsSent;
  }

  /** Rows claimed and not yet started. */
  get buffered(): readonly Claim[] {
    return this.#buffer.slice(this.#head);
  }

  /** How many rows are claimed and not yet started. */
  get holding(): number {
    return this.#buffer.length - this.#head;
  }

  /** Whether the fetcher started as many rows as its `limit` allows: it claims no more. */
  get exhausted(): boolean {
    return this.#o.limit != null && this.#started >= this.#o.limit;
  }

  start(): void {
    this.#state = "running";
    this.#done = this.#loop();
  }

  /** Stops claiming and hands the rows it held unstarted back to the queue at once, for other workers. */
  async stop(): Promise<void> {
    if (this.#state !== "running") return;
    this.#state = "stopped";
    this.#wakeLoop?.();
    await this.#done;
    this.#dueTimes.clear();
    this.#dueTokens.clear();
    this.#dueOpen.clear();
    if (this.#lookTimer) clearTimeout(this.#lookTimer);
    this.#lookTimer = null;
    const rows = this.#buffer.slice(this.#head);
    this.#clear();
    for (const row of rows) this.#o.release({ id: row.id, attempt: row.attempt, started: false });
  }

  /** A wake-up from Redis, a reconnect, or a due time: there may be due tasks. */
  wake(): void {
    this.#maybeWork = true;
    this.#wakeLoop?.();
  }

  /**
   * A wake-up that left wake tokens on `queue`. With free slots the worker takes up to as many as it would claim, and
   * claims only if it got one: a single new task then makes one idle worker claim, not every one. Without free slots
   * it claims when one frees, as on any wake-up (a busy worker's claim is not a stampede). Claims are never held back
   * when the tokens cannot be asked for, or while claims fail (the worker is backing off and would sit on them).
   */
  wakeFor(queue: string): void {
    const take = this.#o.takeWakeTokens;
    const want = this.#want();
    if (!take || this.#slots.free === 0 || want <= 0 || this.#failing) return this.wake();
    void take(queue, want).then((took) => {
      if (took <= 0 || this.#state !== "running") return;
      this.#tokens.set(queue, (this.#tokens.get(queue) ?? 0) + took);
      this.wake();
    });
  }

  /** A claim returned `rows`: the rows of each queue beyond the tokens taken for it spend tokens left by others. */
  #spendTokens(rows: readonly ClaimedRow[], tokens: Map<string, number>): void {
    const spend = this.#o.spendWakeTokens!;
    if (rows.length === 0) return;
    const byQueue = new Map<string, number>();
    for (const row of rows) byQueue.set(row.queue, (byQueue.get(row.queue) ?? 0) + 1);
    for (const [queue, n] of byQueue) spend(queue, n - (tokens.get(queue) ?? 0));
  }

  /**
   * Tasks become due at `at` (epoch ms): wake then. `tokensOf`: the announcement left wake tokens for that time on
   * this queue's counter, and the worker claims then only if it takes one (as wakeFor does for tasks due now).
   */
  wakeAt(at: number, tokensOf?: string): void {
    if (tokensOf !== undefined && this.#o.takeWakeTokens) {
      let queues = this.#dueTokens.get(at);
      if (!queues) this.#dueTokens.set(at, (queues = new Set()));
      queues.add(tokensOf);
    } else {
      this.#dueOpen.add(at);
    }
    this.#dueTimes.add(at);
  }

  /** Announced due times passed: claim if one was announced without tokens, or once a token of one is taken. */
  #dueTimesPassed(passed: readonly number[]): void {
    let open = false;
    const gated: [queue: string, at: number][] = [];
    for (const at of passed) {
      if (this.#dueOpen.delete(at)) open = true;
      const queues = this.#dueTokens.get(at);
      if (!queues) continue;
      this.#dueTokens.delete(at);
      for (const queue of queues) gated.push([queue, at]);
    }
    const take = this.#o.takeWakeTokens;
    const want = this.#want();
    if (open || gated.length === 0 || !take || this.#slots.free === 0 || want <= 0 || this.#failing) {
      return this.#dueTimeCame(0);
    }
    void Promise.all(gated.map(([queue, at]) => take(queue, want, at).then((n) => [queue, n] as const))).then(
      (taken) => {
        let got = 0;
        for (const [queue, n] of taken) {
          if (n <= 0) continue;
          got += n;
          this.#tokens.set(queue, (this.#tokens.get(queue) ?? 0) + n);
        }
        if (got > 0 && this.#state === "running") this.#dueTimeCame(0);
      },
    );
  }

  /** A due time passed (step 0), or a look again after one came (step > 0). */
  #dueTimeCame(step: number): void {
    if (step === 0 && this.#lookTimer) return this.wake(); // a chain is running: it covers this time too
    this.#lookStep = step;
    this.#timedWake = true;
    this.wake();
  }

  /** A claim at a due time came back empty: the task may not be due yet by the database's clock. */
  #lookAgain(): void {
    const step = this.#lookStep;
    if (this.#lookTimer || step >= LOOK_AGAIN_MS.length) return;
    this.#lookTimer = setTimeout(() => {
      this.#lookTimer = null;
      this.#dueTimeCame(step + 1);
    }, LOOK_AGAIN_MS[step]);
    this.#lookTimer.unref();
  }

  /**
   * An attempt ended after `ms` (null: handed back, not a pace to learn from): start the next held row, and claim
   * again if the last claim suggested more work, after letting other finishes coalesce.
   */
  slotFreed(ms: number | null): void {
    if (ms !== null) this.#avgMs = this.#avgMs === Infinity ? ms : this.#avgMs * 0.9 + ms * 0.1;
    this.#pump();
    if (!this.#maybeWork || this.#slotWakePending) return;
    this.#slotWakePending = true;
    setImmediate(() => {
      this.#slotWakePending = false;
      this.#wakeLoop?.();
    });
  }

  /** How many claimed-but-unstarted rows to hold right now: as many as the slots start within the horizon. */
  #prefetchTarget(): number {
    if (this.#avgMs === Infinity) return 0;
    const n = Math.floor((PREFETCH_HORIZON_MS * this.#slots.concurrency) / Math.max(this.#avgMs, 0.001));
    return Math.min(this.#o.prefetch, n);
  }

  async #loop(): Promise<void> {
    const slots = this.#slots;
    while (this.#state === "running") {
      const capacity = slots.concurrency + this.#prefetchTarget();
      const held = this.#buffer.length - this.#head;
      const want = this.#want(capacity);
      // Claim when slots are idle, or (while rows ready to start remain) once half the capacity is missing, so
      // claims come in sizeable batches rather than one row per freed slot.
      const due = held === 0 ? slots.free > 0 : want >= Math.ceil(capacity / 2);
      if (want > 0 && due && this.#maybeWork) {
        this.#maybeWork = false;
        const timed = this.#timedWake;
        this.#timedWake = false;
        let rows: ClaimedRow[];
        const sentAt = Date.now();
        const claim = ++this.#claimsSent;
        const quietAtSend = held === 0 && slots.count === 0 && this.#o.drained !== undefined && this.#o.quiet!();
        const tokens = this.#tokens;
        this.#tokens = new Map();
        try {
          rows = await this.#o.claim(want);
          this.#recovered();
        } catch (err) {
          this.#maybeWork = true;
          await this.#failed(err);
          continue;
        }
        this.#o.signal("claim:answered", { rows: rows.length });
        if (this.#o.spendWakeTokens) this.#spendTokens(rows, tokens);
        if (timed && rows.length === 0) this.#lookAgain();
        // A full batch means the queue may hold more; a short one means it is drained for now (unless a wake-up
        // arrived while the claim was in flight: it set #maybeWork again). A batch of exactly the tasks its tokens
        // announced says nothing more: the other announced tasks went to the workers holding the other tokens.
        if (rows.length === want && sum(tokens) !== rows.length) this.#maybeWork = true;
        if (rows.length === 0 && quietAtSend) this.#o.drained!(claim);
        rows = this.#dropReclaimed(rows);
        // Started rows leave the arrays here, or they would keep every row claimed since they were last empty.
        if (this.#head > 0) {
          this.#buffer = this.#buffer.slice(this.#head);
          this.#marks = this.#marks.slice(this.#head);
          this.#head = 0;
        }
        const mark = { sentAt, seq: this.#o.track(rows) };
        for (const row of rows) {
          this.#buffer.push(row);
          this.#marks.push(mark);
        }
        if (this.#state !== "running") break;
        this.#pump();
        if (this.#maybeWork && slots.free > 0) continue;
      }
      await this.#pause(this.#o.pollMs, true);
    }
  }

  /** How many rows a claim sent now would ask for: the free capacity (slots and prefetch), within `limit`. */
  #want(capacity = this.#slots.concurrency + this.#prefetchTarget()): number {
    const held = this.#buffer.length - this.#head;
    const want = capacity - this.#slots.count - held;
    return this.#o.limit != null ? Math.min(want, this.#o.limit - this.#started - held) : want;
  }

  /** Starts held rows while slots are free. */
  #pump(): void {
    if (this.#pumping) return; // the loop below is already running and will fill the freed slot
    this.#pumping = true;
    try {
      while (this.#slots.free > 0 && this.#head < this.#buffer.length && this.#state === "running") {
        // A held row whose lease may have been swept (a gap in contact with Postgres) is not started.
        if (this.#o.mayBeSwept(this.#marks[this.#head]!)) {
          this.#handBack();
          break;
        }
        this.#started++;
        this.#o.start(this.#buffer[this.#head++]!);
      }
    } finally {
      this.#pumping = false;
    }
    if (this.#head === this.#buffer.length && this.#head > 0) this.#clear();
  }

  /** Hands every held row back (compare-and-set: rows swept meanwhile are left alone) and claims afresh. */
  #handBack(): void {
    const rows = this.#buffer.slice(this.#head);
    this.#clear();
    this.#o.logger.warn("prefetched tasks may have been swept while Postgres was out of reach; handing them back", {
      tasks: rows.length,
    });
    this.#o.signal("buffer:handed-back", { tasks: rows.length });
    for (const row of rows) this.#o.release({ id: row.id, attempt: row.attempt, started: false });
    this.wake();
  }

  #clear(): void {
    this.#buffer = [];
    this.#marks = [];
    this.#head = 0;
  }

  /**
   * A claim that a crash of the Postgres server undid (claims do not wait for the WAL flush) left its task PENDING
   * with its former attempt, while this worker may still be running it: claimed again here, it comes back with a
   * lease already held. Such a row is not started twice. Only checked after the claim connection was replaced (the
   * crash took it), and only until none of the leases held then is left.
   */
  #dropReclaimed(rows: ClaimedRow[]): ClaimedRow[] {
    const connections = this.#o.claimConnections();
    const replaced = connections !== this.#connectionsSeen && this.#connectionsSeen > 0;
    this.#connectionsSeen = connections;
    if (!replaced && !this.#leasesBeforeReconnect) return rows;
    const held = new Set(this.#o.held().map(leaseKey));
    if (replaced) this.#leasesBeforeReconnect = new Set(held);
    const before = this.#leasesBeforeReconnect!;
    for (const k of before) if (!held.has(k)) before.delete(k);
    if (before.size === 0) this.#leasesBeforeReconnect = null;
    return rows.filter((row) => {
      if (!held.has(leaseKey(row))) return true;
      this.#o.logger.warn(
        "claimed a task this worker is already running (its first claim was lost); not starting it twice",
        taskFields(row),
      );
      this.#o.signal("claim:duplicate", { id: row.id, attempt: row.attempt });
      return false;
    });
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

  #recovered(): void {
    this.#retry.reset();
    if (!this.#failing) return;
    this.#failing = false;
    this.#o.contactRestored();
    this.#o.logger.info("Postgres connection restored");
    this.#o.signal("claim:restored");
  }

  async #failed(err: unknown): Promise<void> {
    const transient = isTransientError(err);
    if (!this.#failing || !transient) {
      this.#o.logger[transient ? "warn" : "error"]("claim failed; retrying with backoff", {
        error: (err as Error).message,
      });
    }
    this.#o.signal("claim:failed", { error: err as Error, transient });
    this.#failing = true;
    if (transient) this.#o.contactLost();
    await this.#pause(this.#retry.next(), false);
  }
}

function sum(counts: Map<string, number>): number {
  let n = 0;
  for (const v of counts.values()) n += v;
  return n;
}

function leaseKey(c: Claim): string {
  return `${c.id}:${c.attempt}`;
}

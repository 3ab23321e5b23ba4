import { Worker as Thread } from "node:worker_threads";
import type { Queryable } from "../db/statements.js";
import type { Logger } from "../logger.js";
import { unnamed } from "../db/statements.js";
import { heartbeatStatement } from "../sql/heartbeat.js";
import { workerSeenStatement } from "../sql/workers.js";
import type { Claim } from "../task.js";
import { noSignal, type Signal } from "./events.js";
import { InlineBeats } from "./heartbeat-inline.js";

export interface HeartbeatOptions {
  databaseUrl: string;
  /** The worker's pool: with `inline`, the beats run on it, on the main thread. */
  q?: Queryable;
  /**
   * Beat on the main thread through `q` (InlineBeats) instead of a thread with a connection of its own: on the
   * embedded database, whose one session the thread could not reach, and for a worker held to one connection
   * (maxConnections 1). A handler that blocks the event loop then delays the beats as well.
   */
  inline?: boolean;
  /** Through PgBouncer in transaction pooling mode: the thread's statements go unnamed (see SessionlessClient). */
  pgbouncer?: boolean;
  tasks: string;
  /** `"schema".workers`: the registry row the thread refreshes at every beat. */
  workers?: string;
  /** Tasks running now, recorded in the registry row. */
  running?: () => number;
  workerId: string;
  /** Seconds between beats. */
  interval: number;
  /** Seconds past a task's timeout during which it is still heartbeated; also how stale a row must be to be swept. */
  grace: number;
  logger: Logger;
  /** Every task the worker holds now: running, ready to start, or with its outcome not yet written. */
  held: () => Claim[];
  /** A beat failed after succeeding (or at the first try): this worker lost touch with Postgres. */
  onFailing?: () => void;
  /** A beat succeeded after failing. */
  onRestored?: () => void;
  /** The beat found these held attempts' cancel requested (cancelTask): stop them. Told at every beat until they end. */
  onCancelRequested?: (claims: Claim[]) => void;
  signal?: Signal;
}

/** The last beat that committed: when it was sent, and the last list update (track or sync) it covered. */
export interface BeatMark {
  sentAt: number;
  seq: number;
}

/** The last stretch without a beat of `limit` ms or more: from the beat before it to the one that ended it. */
export interface BeatGap {
  from: number;
  to: number;
}

/**
 * When a row this worker holds may have been swept: its claim or its last beat is older than `limit` ms, or after
 * its claim came a stretch of that long without a beat.
 */
export function mayBeSwept(
  claim: BeatMark,
  beat: BeatMark | null,
  gap: BeatGap | null,
  limit: number,
  now: number,
): boolean {
  if (gap !== null && claim.sentAt < gap.to && gap.to - Math.max(gap.from, claim.sentAt) >= limit) return true;
  const lastSeen = beat !== null && beat.seq >= claim.seq ? Math.max(beat.sentAt, claim.sentAt) : claim.sentAt;
  return now - lastSeen >= limit;
}

interface BeatMessage {
  type: string;
  message?: string;
  sentAt?: number;
  seq?: number;
  rows?: number;
  /** "id:attempt,…" of the beaten rows whose cancel was requested. */
  cancel?: string;
}

function parseClaims(text: string): Claim[] {
  return text.split(",").map((pair) => {
    const [id, attempt] = pair.split(":");
    return { id: id!, attempt: Number(attempt) };
  });
}

/** Claims added to the thread's list, one message at a time, before it is sent the whole list instead. */
const RESYNC_AFTER = 8192;

/** Two comma-joined strings: cloning them to the thread costs a copy, where arrays of strings cost one per item. */
function message(type: "add" | "set", claims: readonly Claim[], seq: number, running?: number) {
  const ids = new Array<string>(claims.length);
  const attempts = new Array<number>(claims.length);
  for (let i = 0; i < claims.length; i++) {
    ids[i] = claims[i]!.id;
    attempts[i] = claims[i]!.attempt;
  }
  return { type, ids: ids.join(","), attempts: attempts.join(","), seq, running };
}

/**
 * Keeps `heartbeat_at` fresh on every task this worker holds, from a dedicated thread with its own
 * connection (see heartbeat-thread.js for why). When the process dies or is frozen, the beats stop and the sweeper
 * takes the tasks back.
 */
export class Heartbeat {
  readonly #options: HeartbeatOptions;
  #thread: Thread | InlineBeats | null = null;
  #failing = false;
  #stopped = false;
  #syncTimer: NodeJS.Timeout | null = null;
  /** Claims added since the thread last got the whole list. */
  #added = 0;
  /** Numbers the list updates sent to the thread, so a beat says which ones it covered. */
  #seq = 0;
  #lastBeat: BeatMark | null = null;
  /** The last stretch without beats of gapLimit or more. */
  #gap: BeatGap | null = null;
  #previousBeatAt = Date.now();

  constructor(options: HeartbeatOptions) {
    this.#options = options;
  }

  start(): void {
    const { databaseUrl, tasks, workers, workerId, interval, grace, logger } = this.#options;
    const named = this.#options.pgbouncer ? unnamed : <S>(s: S) => s;
    const seen = workers === undefined ? undefined : named(workerSeenStatement(workers));
    const beat = { statement: named(heartbeatStatement(tasks)), seen, workerId, interval, grace };
    const thread =
      this.#options.inline && this.#options.q
        ? new InlineBeats(this.#options.q, beat)
        : new Thread(new URL("./heartbeat-thread.js", import.meta.url), { workerData: { databaseUrl, ...beat } });
    thread.unref();
    const signal = this.#options.signal ?? noSignal;
    thread.on("message", (msg: BeatMessage) => {
      if (msg.type === "beat") {
        if (msg.cancel) this.#options.onCancelRequested?.(parseClaims(msg.cancel));
        this.#lastBeat = { sentAt: msg.sentAt!, seq: msg.seq! };
        if (msg.sentAt! - this.#previousBeatAt >= this.gapLimit)
          this.#gap = { from: this.#previousBeatAt, to: msg.sentAt! };
        this.#previousBeatAt = msg.sentAt!;
        if (this.#failing) {
          logger.info("heartbeat restored");
          this.#options.onRestored?.();
          signal("beat:restored");
        }
        this.#failing = false;
        signal("beat", { rows: msg.rows ?? 0 });
      } else if (msg.type === "error" && !this.#failing) {
        this.#failing = true;
        logger.warn("heartbeat failed; retrying", { error: msg.message });
        this.#options.onFailing?.();
        signal("beat:failed", { error: msg.message ?? "" });
      }
    });
    thread.on("error", (err) => logger.error("heartbeat thread crashed", { error: err.message }));
    thread.on("exit", () => {
      if (this.#thread !== thread) return; // stopped on purpose
      // Without beats the sweeper would take this worker's tasks away: start another thread.
      this.#thread = null;
      logger.warn("heartbeat thread exited; restarting it");
      setTimeout(() => {
        if (!this.#stopped) this.start();
      }, 200).unref();
    });
    this.#thread = thread;
    this.#sync();
    if (!this.#syncTimer) {
      // The full list, once per beat: this is how finished tasks leave it.
      this.#syncTimer = setInterval(() => this.#sync(), interval * 1000);
      this.#syncTimer.unref();
    }
  }

  /**
   * Newly claimed tasks (already in `held()`): covered from the next beat on, even if the main thread blocks right
   * after. The thread forgets finished tasks only when it gets the whole list, so after many claims it gets that
   * instead: at tens of thousands of tasks a second, adds alone grew its map by that many entries per beat interval.
   */
  track(claims: readonly Claim[]): number {
    if (claims.length === 0 || !this.#thread) return this.#seq;
    this.#added += claims.length;
    if (this.#added > RESYNC_AFTER) this.#sync();
    else this.#thread.postMessage(message("add", claims, ++this.#seq));
    return this.#seq;
  }

  /**
   * Milliseconds without a beat after which a held row may have been swept: a fifth short of staleAfter, for the
   * time between this check and the handler's start. Only durations on this host's clock are compared (a beat's
   * heartbeat_at is no earlier than its sentAt), so the offset between this host's clock and the database's cancels.
   */
  get gapLimit(): number {
    return this.#options.grace * 800;
  }

  /** Whether a row claimed at `claim` may have been swept by now (see mayBeSwept). */
  mayBeSwept(claim: BeatMark): boolean {
    return mayBeSwept(claim, this.#lastBeat, this.#gap, this.gapLimit, Date.now());
  }

  #sync(): void {
    this.#added = 0;
    this.#thread?.postMessage(message("set", this.#options.held(), ++this.#seq, this.#options.running?.()));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#syncTimer) clearInterval(this.#syncTimer);
    const thread = this.#thread;
    if (!thread) return;
    this.#thread = null;
    const stopped = new Promise<void>((resolve) => {
      thread.on("message", (msg: { type: string }) => msg.type === "stopped" && resolve());
      thread.on("exit", () => resolve());
    });
    thread.postMessage({ type: "stop" });
    const timer = setTimeout(() => void thread.terminate(), 2000);
    await stopped;
    clearTimeout(timer);
    await thread.terminate();
  }
}

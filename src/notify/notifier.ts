import type { StoredProgress } from "../task.js";

/**
 * The doorbell. Postgres holds every task; these messages only tell a worker to claim sooner or a waiter to
 * re-read a row sooner. Losing any of them costs latency, never a task: workers poll and waiters re-read on a
 * timer as well. Nothing here touches the database.
 */
export type NotifierStatus = "down" | "up" | "silent";

/**
 * A wake-up: `count` tasks on `queue`, due at `dueAt` (epoch ms) or now. `tokens`: the announcement left that many
 * wake tokens to take (`takeWakeTokens`, for that due time); a wake-up without them (an older publisher) lets every
 * worker that hears it claim.
 */
export type WakeListener = (queue: string, count: number, dueAt?: number, tokens?: boolean) => void;

export interface Notifier {
  /** True while messages can be sent and received. */
  readonly connected: boolean;
  /**
   * Connects (a publish or a listener connects too, on first use). Resolves at once: while Redis is away, everything
   * works by polling.
   */
  start(): Promise<void>;
  /** Disconnects for good: nothing is sent or heard after. */
  stop(): Promise<void>;
  /** The same as `stop()`. */
  close(): Promise<void>;
  /**
   * `count` new tasks on `queue` (published after the insert committed); `dueAt` (epoch ms) when they are not due
   * yet, so idle workers can set a timer instead of waiting for their next poll.
   */
  publishWake(queue: string, count: number, dueAt?: number): void;
  /** These tasks reached a final state (published after the write committed). */
  publishFinished(ids: readonly string[]): void;
  /** A running task's progress, as stored (published after the write committed). */
  publishProgress(id: string, progress: StoredProgress): void;
  /** `cancelTask` asked for attempt `attempt` of running task `id` to stop (published after the request committed). */
  publishCancel(id: string, attempt: number): void;
  /**
   * Takes up to `max` of the wake tokens the due-now announcements of `queue` left (see wake-tokens.ts): a worker
   * woken with free slots claims only if it got one, so one new task does not make every idle worker claim. Resolves
   * `max` when no token can be asked for (Redis away, no counter): then every woken worker claims, as without tokens.
   * `dueAt`: the tokens of the tasks announced for that due time (epoch ms, as announced). Absent on a
   * notifier whose wake-ups reach few enough workers to let all of them claim.
   */
  takeWakeTokens?(queue: string, max: number, dueAt?: number): Promise<number>;
  /** A claim returned `claimed` rows of `queue` beyond the tokens taken for it: those tokens are spent. */
  spendWakeTokens?(queue: string, claimed: number): void;
  /** Calls `listener` on every wake-up for one of `queues`. Returns the unsubscribe function. */
  onWake(queues: readonly string[], listener: WakeListener): () => void;
  /** Calls `listener` with each finished id. Returns the unsubscribe function. */
  onFinished(listener: (id: string) => void): () => void;
  /** Calls `listener` with every progress published (all tasks: filter by id). Returns the unsubscribe function. */
  onProgress(listener: (id: string, progress: StoredProgress) => void): () => void;
  /** Calls `listener` with every cancel request published. Returns the unsubscribe function. */
  onCancel(listener: (id: string, attempt: number) => void): () => void;
  /** Calls `listener` when the connection comes back after an outage (wake-ups may have been missed). */
  onReconnect(listener: () => void): () => void;
  /**
   * Calls `listener` when Redis becomes unreachable ("down", once per outage), answers again ("up"), or went silent
   * (a half-open connection, found by the liveness ping, "silent"). Returns the unsubscribe function.
   */
  onStatus(listener: (status: NotifierStatus) => void): () => void;
  /** Resolves once the subscriptions made so far are active (at once while disconnected). */
  ready(): Promise<void>;
}

export function channels(schema: string) {
  const prefix = `skiplock:${schema}`;
  return {
    wake: (queue: string) => `${prefix}:wake:${queue}`,
    /** The counter of wake tokens of a queue, or of one due time of it (a key, not a channel; no queue has "@"). */
    wakeTokens: (queue: string, dueAt?: number) =>
      `${prefix}:wake-tokens:${queue}${dueAt === undefined ? "" : `@${dueAt}`}`,
    finished: `${prefix}:finished`,
    progress: `${prefix}:progress`,
    cancel: `${prefix}:cancel`,
    ping: (id: string) => `${prefix}:ping:${id}`,
  };
}

/** The notifier used without Redis: sends nothing, hears nothing. Workers and waiters poll. */
export class NullNotifier implements Notifier {
  readonly connected = false;
  publishWake(_queue: string, _count: number, _dueAt?: number): void {}
  publishFinished(): void {}
  publishProgress(): void {}
  publishCancel(): void {}
  onWake(): () => void {
    return () => {};
  }
  onFinished(): () => void {
    return () => {};
  }
  onProgress(): () => void {
    return () => {};
  }
  onCancel(): () => void {
    return () => {};
  }
  onStatus(): () => void {
    return () => {};
  }

  onReconnect(): () => void {
    return () => {};
  }
  async ready(): Promise<void> {}
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async close(): Promise<void> {}
}

// Times come from the global `performance` clock rather than node:perf_hooks' binding, so that fake timers in tests
// move it together with setTimeout.

/** setTimeout's longest delay; longer timeouts are clamped (they are days long and end the same way). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Something with a deadline: `expire()` is called once it passes, unless it is `done` by then. */
export interface Expiring {
  readonly done: boolean;
  expire(): void;
}

/**
 * Every deadline of one length, in the order they were set, which is also the order they fall due: entries
 * [head, tail) of two arrays that are reused (emptying an array by setting its length would free its storage, and
 * with tasks ending one by one that cost two allocations per task).
 */
interface Lane {
  readonly ms: number;
  at: number[];
  items: (Expiring | null)[];
  head: number;
  tail: number;
  /** Items not yet done. */
  live: number;
  timer: NodeJS.Timeout | null;
}

/**
 * Timeouts for many running attempts with one timer per distinct timeout length, instead of a timer per attempt.
 * Attempts with the same timeout fall due in the order they started, so each length keeps a queue and one timer
 * for its head. Finished attempts are skipped when the head is reached, or dropped in bulk when most of a long
 * queue has finished. In a drain of no-op tasks, a setTimeout and clearTimeout per attempt were a tenth of the
 * worker's CPU.
 */
export class Deadlines {
  readonly #lanes = new Map<number, Lane>();
  #firing = false;

  /** Calls `item.expire()` once `timeoutMs` has passed, unless the item is done by then (see `finished`). */
  add(timeoutMs: number, item: Expiring): void {
    const ms = laneMs(timeoutMs);
    let lane = this.#lanes.get(ms);
    if (!lane) {
      lane = { ms, at: [], items: [], head: 0, tail: 0, live: 0, timer: null };
      this.#lanes.set(ms, lane);
    }
    lane.at[lane.tail] = performance.now() + ms;
    lane.items[lane.tail] = item;
    lane.tail++;
    lane.live++;
    if (!lane.timer) this.#arm(lane, ms);
  }

  /** The item added with `timeoutMs` is done: it will not expire. */
  finished(timeoutMs: number): void {
    const lane = this.#lanes.get(laneMs(timeoutMs));
    if (!lane) return;
    lane.live--;
    if (this.#firing) return;
    const queued = lane.tail - lane.head;
    if (lane.live === 0) {
      // Nothing left to time: empty the queue, and let an armed timer find it empty (cheaper than re-arming).
      empty(lane);
    } else if (queued > 1024 && lane.live * 4 < queued) {
      this.#compact(lane);
    }
  }

  /** Stops every timer; nothing expires after this. */
  close(): void {
    for (const lane of this.#lanes.values()) if (lane.timer) clearTimeout(lane.timer);
    this.#lanes.clear();
  }

  #arm(lane: Lane, delay: number): void {
    lane.timer = setTimeout(() => this.#fire(lane), Math.max(1, Math.ceil(delay)));
    lane.timer.unref();
  }

  #fire(lane: Lane): void {
    lane.timer = null;
    const now = performance.now();
    this.#firing = true;
    try {
      while (lane.head < lane.tail) {
        const item = lane.items[lane.head]!;
        if (!item.done) {
          // A timer may fire a little early by the performance clock.
          if (lane.at[lane.head]! > now + 1) break;
          lane.items[lane.head++] = null;
          item.expire();
        } else {
          lane.items[lane.head++] = null;
        }
      }
    } finally {
      this.#firing = false;
    }
    if (lane.head >= lane.tail || lane.live <= 0) {
      empty(lane);
      if (lane.live <= 0 && this.#lanes.get(lane.ms) === lane) this.#lanes.delete(lane.ms);
      return;
    }
    if (lane.head > 1024 && lane.head * 2 > lane.tail) this.#compact(lane);
    this.#arm(lane, lane.at[lane.head]! - now);
  }

  /** Drops the finished items from the lane's queue, keeping the order of the rest. */
  #compact(lane: Lane): void {
    const at: number[] = [];
    const items: Expiring[] = [];
    for (let i = lane.head; i < lane.tail; i++) {
      const item = lane.items[i]!;
      if (item.done) continue;
      at.push(lane.at[i]!);
      items.push(item);
    }
    lane.at = at;
    lane.items = items;
    lane.head = 0;
    lane.tail = items.length;
  }
}

/** The lane a timeout belongs to: its length in ms, within what setTimeout accepts. */
function laneMs(timeoutMs: number): number {
  return Math.min(Math.max(timeoutMs, 1), MAX_TIMER_MS);
}

/** Drops every entry, keeping the arrays' storage for the next ones. */
function empty(lane: Lane): void {
  for (let i = lane.head; i < lane.tail; i++) lane.items[i] = null;
  lane.head = 0;
  lane.tail = 0;
}

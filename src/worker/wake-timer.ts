import { MAX_TIMER_MS } from "./deadlines.js";

/**
 * Every due time a worker has heard of (delayed tasks, retries after their backoff), each waking it when it comes,
 * with one timer for the earliest. A single "earliest only" timer forgot the later ones, which then waited for the
 * next poll. It never wakes before a time has passed: `at` is a database time rounded to the millisecond, and a claim
 * sent a hair early finds the task not yet due (the fetcher then looks again, see Fetcher.#lookAgain). Times that
 * have passed by the time it fires share one wake-up.
 */
export class WakeTimer {
  /** A binary min-heap of epoch ms. */
  readonly #heap: number[] = [];
  /** Called with the times that passed (each as added, possibly repeated). */
  readonly #wake: (passed: number[]) => void;
  #timer: NodeJS.Timeout | null = null;
  #armedFor = Infinity;

  constructor(wake: (passed: number[]) => void) {
    this.#wake = wake;
  }

  get size(): number {
    return this.#heap.length;
  }

  /** Wake once `at` (epoch ms) has passed; at once when it has. */
  add(at: number): void {
    if (at < Date.now()) return this.#wake([at]);
    this.#push(at);
    if (at < this.#armedFor) this.#arm();
  }

  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#armedFor = Infinity;
    const next = this.#heap[0];
    if (next === undefined) return;
    this.#armedFor = next;
    // At least 1 ms past `at` by Date.now(): `at` may have been rounded down by up to half a millisecond.
    this.#timer = setTimeout(() => this.#fire(), Math.min(Math.max(next + 1 - Date.now(), 1), MAX_TIMER_MS));
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = null;
    // Everything that has passed (one claim serves them all); none still ahead, even by a millisecond. A timer may
    // fire a little early by Date.now() (it runs on the event loop's own clock): then this only re-arms.
    const now = Date.now();
    const passed: number[] = [];
    while (this.#heap.length > 0 && this.#heap[0]! < now) passed.push(this.#pop());
    this.#arm();
    if (passed.length > 0) this.#wake(passed);
  }

  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#armedFor = Infinity;
    this.#heap.length = 0;
  }

  #push(v: number): void {
    const h = this.#heap;
    let i = h.push(v) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= v) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = v;
  }

  /** Removes and returns the earliest time. */
  #pop(): number {
    const h = this.#heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && h[r]! < h[l]! ? r : l;
      if (h[c]! >= last) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
    return top;
  }
}

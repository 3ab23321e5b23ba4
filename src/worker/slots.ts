import type { Execution } from "./executor.js";

/**
 * The attempts running now, in slots reused as attempts come and go: a Map keyed by task id rehashed its table every
 * few attempts while tasks started and ended one by one. Never holds more than `concurrency`.
 */
export class Slots {
  readonly concurrency: number;
  readonly #slots: (Execution | null)[] = [];
  /** Indexes of the empty slots. */
  readonly #empty: number[] = [];
  #count = 0;

  constructor(concurrency: number) {
    this.concurrency = concurrency;
  }

  /** Attempts running now. */
  get count(): number {
    return this.#count;
  }

  get free(): number {
    return this.concurrency - this.#count;
  }

  add(exec: Execution): void {
    const slot = this.#empty.pop() ?? this.#slots.length;
    this.#slots[slot] = exec;
    exec.slot = slot;
    this.#count++;
  }

  /** Frees the attempt's slot; false when it holds none (an outcome reported twice). */
  remove(exec: Execution): boolean {
    if (exec.slot < 0 || this.#slots[exec.slot] !== exec) return false;
    this.#slots[exec.slot] = null;
    this.#empty.push(exec.slot);
    exec.slot = -1;
    this.#count--;
    return true;
  }

  all(): Execution[] {
    return this.#slots.filter((e): e is Execution => e !== null);
  }
}

import { storableText } from "../json-storable.js";
import { STATEMENT_JSON_CHARS } from "../json.js";

/**
 * Characters of results (or error texts) one statement carries at most; a larger outcome goes alone. Every result
 * of a batch travels in one jsonb document (see STATEMENT_JSON_CHARS).
 */
const BATCH_CHARS = STATEMENT_JSON_CHARS;

/** An error text is kept to this many characters (its message and the top of its stack), the rest cut off. */
const MAX_ERROR_CHARS = 64 * 1024;

/**
 * Outcomes of one kind waiting to be written, oldest first, and how many characters of results or error texts they
 * carry, so that one statement never carries more than BATCH_CHARS (unless a single outcome is larger).
 */
export class OutcomeQueue<T> {
  items: T[] = [];
  #chars = 0;
  constructor(readonly size: (item: T) => number) {}

  push(item: T): void {
    this.items.push(item);
    this.#chars += this.size(item);
  }

  /** The next batch: all of it, or (over BATCH_CHARS) the oldest that fit, at least one. */
  take(): T[] {
    if (this.#chars <= BATCH_CHARS) {
      const all = this.items;
      this.items = [];
      this.#chars = 0;
      return all;
    }
    let chars = 0;
    let n = 0;
    while (n < this.items.length && (n === 0 || chars + this.size(this.items[n]!) <= BATCH_CHARS)) {
      chars += this.size(this.items[n++]!);
    }
    this.#chars -= chars;
    return this.items.splice(0, n);
  }

  /** Outcomes taken but not written: first in line again. */
  putBack(items: T[]): void {
    if (items.length === 0) return;
    this.items.unshift(...items);
    for (const item of items) this.#chars += this.size(item);
  }
}

/** An error text as Postgres can store it: NULs escaped, lone surrogates replaced, cut to MAX_ERROR_CHARS. */
export function storableError(text: string): string {
  const cut =
    text.length <= MAX_ERROR_CHARS
      ? text
      : `${text.slice(0, MAX_ERROR_CHARS)}\n… (${text.length - MAX_ERROR_CHARS} more characters)`;
  return storableText(cut);
}

/**
 * How long to wait before trying again something that failed for reasons outside our control (Postgres or Redis
 * unreachable, a write that did not commit): the wait doubles with each failure in a row up to a ceiling, and is
 * scaled by a random factor in [0.5, 1) so that processes cut off together do not all come back at the same moment.
 */
export interface RetryDelayPolicy {
  /** Ceiling of the first wait, in ms. */
  firstMs: number;
  /** Ceiling of every wait, in ms. */
  maxMs: number;
}

/** Retrying Postgres: a tenth of a second at first, at most five seconds. */
export const DATABASE_RETRY: RetryDelayPolicy = { firstMs: 100, maxMs: 5000 };

/** Milliseconds to wait before retry `attempt` (0 for the first) under `policy`. */
export function retryDelay(attempt: number, policy: RetryDelayPolicy): number {
  const ceiling = Math.min(policy.firstMs * 2 ** Math.min(attempt, 30), policy.maxMs);
  return ceiling * (0.5 + Math.random() / 2);
}

/** The waits of one operation: each `next()` counts a failure in a row, `reset()` a success. */
export class RetryDelay {
  readonly #policy: RetryDelayPolicy;
  #attempt = 0;
  #current = 0;

  constructor(policy: RetryDelayPolicy = DATABASE_RETRY) {
    this.#policy = policy;
  }

  /** The wait before the next try, longer than the last (up to the ceiling). */
  next(): number {
    this.#current = retryDelay(this.#attempt++, this.#policy);
    return this.#current;
  }

  /** The wait `next()` last gave; 0 since the last success. */
  get current(): number {
    return this.#current;
  }

  reset(): void {
    this.#attempt = 0;
    this.#current = 0;
  }
}

import { validateSeconds } from "./config.js";
import { InvalidOptionError } from "./errors.js";
import { assertKnownKeys } from "./options.js";

/**
 * How long to wait before retrying a task: seconds as a function of the attempt that failed (1 for the first), or an
 * exponential `{ base, max }` (base · 2^(attempt − 1) seconds, at most max, times a random factor in [0.5, 1)), the
 * shape of the worker's default `retryBackoff`.
 */
export type Backoff = ((attempt: number) => number) | { base?: number; max?: number };

/** Whether a failure is worth a retry; `false` fails the task for good at once. */
export type RetryOn = (error: unknown) => boolean;

/** A task's own retry policy, as defineTask takes it. */
export interface RetryPolicy {
  backoff?: Backoff;
  retryOn?: RetryOn;
}

/** The longest wait a backoff may ask for (as for `delay`): ten years. */
const MAX_BACKOFF_SECONDS = 10 * 365 * 24 * 3600;

/** The policy in `options` (undefined fields: none), checked; null when it has neither field. */
export function validateRetryPolicy(
  options: { backoff?: unknown; retryOn?: unknown },
  where: string,
): RetryPolicy | null {
  const { backoff, retryOn } = options;
  if (retryOn !== undefined && typeof retryOn !== "function") {
    throw new InvalidOptionError("retryOn", `${where}: expected a function (error) => boolean`);
  }
  if (backoff !== undefined && typeof backoff !== "function") {
    if (backoff === null || typeof backoff !== "object" || Array.isArray(backoff)) {
      throw new InvalidOptionError("backoff", `${where}: expected (attempt) => seconds or { base, max } in seconds`);
    }
    assertKnownKeys(`${where} backoff`, backoff, ["base", "max"]);
    const { base, max } = backoff as { base?: unknown; max?: unknown };
    if (base !== undefined) validateSeconds("backoff.base", base);
    if (max !== undefined) validateSeconds("backoff.max", max);
  }
  if (backoff === undefined && retryOn === undefined) return null;
  const policy: RetryPolicy = {};
  if (backoff !== undefined) policy.backoff = backoff as Backoff;
  if (retryOn !== undefined) policy.retryOn = retryOn as RetryOn;
  return policy;
}

/**
 * Seconds before the retry that follows failed attempt `attempt` (1 for the first). Throws when a backoff function
 * throws or returns anything but a number of seconds >= 0; more than ten years is cut to ten years.
 */
export function backoffSeconds(backoff: Backoff, attempt: number): number {
  if (typeof backoff !== "function") {
    const ceiling = Math.min((backoff.base ?? 1) * 2 ** Math.min(attempt - 1, 1000), backoff.max ?? 3600);
    return ceiling * (0.5 + Math.random() / 2);
  }
  const seconds = backoff(attempt);
  if (typeof seconds !== "number" || Number.isNaN(seconds) || seconds < 0) {
    throw new InvalidOptionError(
      "backoff",
      `returned ${String(seconds)} for attempt ${attempt}: expected seconds >= 0`,
    );
  }
  return Math.min(seconds, MAX_BACKOFF_SECONDS);
}

/** A PermanentError, recognised by its code (so also one from another copy of skiplock, or cloned from a thread). */
export function isPermanentError(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === "PERMANENT";
}

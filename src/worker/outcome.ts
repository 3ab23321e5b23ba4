import { inspect } from "node:util";
import { HandlerError, NotJsonError } from "../errors.js";
import { toJsonText } from "../json.js";

/** How one attempt ended, as the completer writes it. */
export type Outcome =
  | { kind: "completed"; resultJson: string; duration: number }
  | {
      kind: "failed";
      error: string;
      final: boolean;
      duration: number;
      /** What was thrown, when the task's retry policy is yet to judge it (worker/attempts.ts). */
      thrown?: unknown;
      /** The error's name and message, sent by a task thread (which judged it itself); else read from `thrown`. */
      type?: string;
      message?: string;
      /** Why the task's retryOn could not judge the error (it threw), reported as worker:error. */
      policyError?: string;
    }
  /** Interrupted by shutdown: hand the task back, no retry used. */
  | { kind: "released" }
  /**
   * Stopped at the request of cancelTask: the handler settled with an error after its signal fired, or ignored the
   * signal for cancelGrace seconds and was abandoned. Never retried. `error` is what is stored.
   */
  | { kind: "cancelled"; error: string; duration: number };

/** Message and stack of whatever a handler threw, readable even when it is not an Error. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const text =
      err.stack && err.stack.includes(err.message) ? err.stack : `${err.name}: ${err.message}\n${err.stack ?? ""}`;
    return err.cause === undefined ? text : `${text}\nCaused by: ${describeError(err.cause)}`;
  }
  const shown = inspect(err, { depth: 3, breakLength: Infinity, maxStringLength: 2000 });
  return `${new HandlerError(`handler threw a non-Error value: ${shown}`).stack?.split("\n")[0]}`;
}

/**
 * The handler's return value as JSON text (undefined becomes null), or a failure saying why it cannot be stored.
 * Such a failure is final: the same code would return the same value on every retry.
 */
export function resultOutcome(value: unknown, duration: number): Outcome {
  let resultJson: string;
  try {
    resultJson = value === undefined ? "null" : toJsonText(value, "result");
  } catch (err) {
    const e = new HandlerError(`handler returned a value JSON cannot carry: ${(err as Error).message}`);
    return { kind: "failed", error: `${e.name}: ${e.message}`, final: true, duration };
  }
  return { kind: "completed", resultJson, duration };
}

/**
 * Why a claimed row's args cannot be the handler's parameters, or null when they can. Rows written through skiplock
 * always hold an array; one written by hand may not, and spreading `{"length":1e8}` into a call would build a
 * hundred million undefined arguments before failing.
 */
export function argsProblem(args: unknown): Outcome | null {
  if (Array.isArray(args)) return null;
  const got = args === null ? "null" : typeof args === "object" ? "an object" : typeof args;
  const e = new NotJsonError("args", `task arguments must be a JSON array (the handler's parameters), got ${got}`);
  return { kind: "failed", error: `${e.name}: ${e.message}`, final: true, duration: 0 };
}

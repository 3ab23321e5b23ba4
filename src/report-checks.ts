import { InvalidOptionError } from "./errors.js";
import { toJsonText } from "./json.js";
import type { JsonValue } from "./task.js";

/*
 * What a handler may report through taskContext().progress and setMeta, checked the same way by the worker and by
 * the test clients (which must not load the database modules).
 */

/** The longest progress message, in characters. */
const MAX_MESSAGE_CHARS = 2000;
/** The largest setMeta patch, in bytes of UTF-8 JSON: meta is what users attach, not a place for results. */
const MAX_META_PATCH_BYTES = 64 * 1024;
/** `progress(fraction, message)` checked: its JSON text, or a typed error (InvalidOptionError, NotJsonError). */
export function checkProgress(fraction: unknown, message: unknown): string {
  if (typeof fraction !== "number" || !Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
    throw new InvalidOptionError("fraction", `expected a number from 0 to 1, got ${String(fraction)}`);
  }
  if (message !== undefined && message !== null && typeof message !== "string") {
    throw new InvalidOptionError("message", `expected a string, got ${typeof message}`);
  }
  if (typeof message === "string" && message.length > MAX_MESSAGE_CHARS) {
    throw new InvalidOptionError("message", `expected at most ${MAX_MESSAGE_CHARS} characters, got ${message.length}`);
  }
  return toJsonText({ fraction, message: message ?? null }, "progress");
}

/** A `setMeta(patch)` checked: a plain JSON object of at most 64 KiB, as a copy the handler cannot change after. */
export function checkMetaPatch(patch: unknown): { [key: string]: JsonValue } {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) {
    throw new InvalidOptionError("meta", "setMeta expects an object whose top-level keys are merged into meta");
  }
  const json = toJsonText(patch, "meta", MAX_META_PATCH_BYTES, "the setMeta limit (64 KiB)");
  return JSON.parse(json) as { [key: string]: JsonValue };
}

import { InvalidOptionError, UnknownOptionError } from "./errors.js";

/**
 * Refuses an options object with a key the call does not know, such as `retries` for `maxRetries`: JavaScript
 * callers get no compile-time check, and a typo would otherwise be ignored without a word. `what` names the call in
 * the error ("createTask", "new Worker"; a function making it, to build it only for an error); keys whose value is
 * `undefined` are let through, as spreading optional settings makes them. Also refuses `options` that are not an
 * object at all.
 */
export function assertKnownKeys(what: string | (() => string), options: unknown, allowed: readonly string[]): void {
  if (options === undefined) return;
  const name = () => (typeof what === "string" ? what : what());
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    const got = options === null ? "null" : Array.isArray(options) ? "an array" : typeof options;
    throw new InvalidOptionError("options", `${name()} expects an object of options, got ${got}`);
  }
  for (const key in options) {
    if (!Object.prototype.hasOwnProperty.call(options, key) || allowed.includes(key)) continue;
    if ((options as Record<string, unknown>)[key] === undefined) continue;
    throw new UnknownOptionError(key, name(), allowed, closest(key, allowed));
  }
}

/** The allowed name `key` was most likely meant to be: one containing it (or contained), or within two edits. */
function closest(key: string, allowed: readonly string[]): string | undefined {
  const k = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = 3;
  for (const name of allowed) {
    const n = name.toLowerCase();
    if (k.length >= 3 && (n.includes(k) || k.includes(n))) return name;
    const d = editDistance(k, n);
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance between two short strings. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

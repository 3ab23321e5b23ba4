import { NotJsonError } from "./errors.js";

/**
 * Checks that `value` survives a JSON round trip unchanged and returns its JSON text. Refuses what
 * `JSON.stringify` would drop or mangle silently: BigInt (throws), functions and symbols (vanish), cycles
 * (throw), `undefined` in arrays (becomes null), NaN and ±Infinity (become null), and objects that are not plain
 * (Map, Set, class instances lose their contents). Objects with a `toJSON` method, such as Date, are accepted
 * as what `toJSON` returns. `undefined` object properties are dropped, as JSON does.
 */
export function toJsonText(value: unknown, path: string): string {
  assertJson(value, path, new Set());
  return JSON.stringify(value);
}

function assertJson(value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) throw new NotJsonError(path, `${value} is not a finite number`);
      return;
    case "bigint":
      throw new NotJsonError(path, "BigInt is not supported (pass it as a string)");
    case "function":
      throw new NotJsonError(path, "a function is not data");
    case "symbol":
      throw new NotJsonError(path, "a symbol is not data");
    case "undefined":
      throw new NotJsonError(path, "undefined is not JSON (use null)");
  }
  if (value === null) return;
  const obj = value as object;
  if (seen.has(obj)) throw new NotJsonError(path, "the value contains a cycle");
  if (typeof (obj as { toJSON?: unknown }).toJSON === "function") {
    seen.add(obj);
    assertJson((obj as { toJSON: () => unknown }).toJSON(), path, seen);
    seen.delete(obj);
    return;
  }
  seen.add(obj);
  if (Array.isArray(obj)) {
    for (let i = 0; i < obj.length; i++) assertJson(obj[i], `${path}[${i}]`, seen);
  } else {
    const proto = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) {
      const kind = (obj as { constructor?: { name?: string } }).constructor?.name ?? "object";
      throw new NotJsonError(path, `a ${kind} is not a plain object`);
    }
    for (const key of Object.keys(obj)) {
      const v = (obj as Record<string, unknown>)[key];
      if (v !== undefined) assertJson(v, `${path}.${key}`, seen);
    }
  }
  seen.delete(obj);
}

import { NotJsonError } from "./errors.js";

/**
 * Checks that `value` survives a JSON round trip unchanged and returns its JSON text. Refuses what
 * `JSON.stringify` would drop or mangle silently: BigInt (throws), functions and symbols (vanish), cycles
 * (throw), `undefined` in arrays (becomes null), NaN and ±Infinity (become null), and objects that are not plain
 * (Map, Set, class instances lose their contents). Objects with a `toJSON` method, such as Date, are accepted
 * as what `toJSON` returns. `undefined` object properties are dropped, as JSON does.
 */
export function toJsonText(value: unknown, path: string): string {
  try {
    assertJson(value, []);
  } catch (err) {
    if (err instanceof Invalid) throw new NotJsonError(path + err.path.reverse().join(""), err.reason);
    throw err;
  }
  return JSON.stringify(value);
}

/**
 * Where a value failed and why. The path is collected on the way out, so that checking valid data (nearly all of
 * it) builds no path strings: one per array element and property was most of what checking a batch cost.
 */
class Invalid extends Error {
  readonly path: string[] = [];
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** `ancestors`: the objects enclosing `value`, to refuse cycles. */
function assertJson(value: unknown, ancestors: object[]): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) throw new Invalid(`${value} is not a finite number`);
      return;
    case "bigint":
      throw new Invalid("BigInt is not supported (pass it as a string)");
    case "function":
      throw new Invalid("a function is not data");
    case "symbol":
      throw new Invalid("a symbol is not data");
    case "undefined":
      throw new Invalid("undefined is not JSON (use null)");
  }
  if (value === null) return;
  const obj = value as object;
  if (ancestors.includes(obj)) throw new Invalid("the value contains a cycle");
  ancestors.push(obj);
  if (typeof (obj as { toJSON?: unknown }).toJSON === "function") {
    assertJson((obj as { toJSON: () => unknown }).toJSON(), ancestors);
  } else if (Array.isArray(obj)) {
    for (let i = 0; i < obj.length; i++) {
      try {
        assertJson(obj[i], ancestors);
      } catch (err) {
        if (err instanceof Invalid) err.path.push(`[${i}]`);
        throw err;
      }
    }
  } else {
    const proto = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) {
      const kind = (obj as { constructor?: { name?: string } }).constructor?.name ?? "object";
      throw new Invalid(`a ${kind} is not a plain object`);
    }
    for (const key in obj) {
      if (!Object.prototype.hasOwnProperty.call(obj, key)) continue;
      const v = (obj as Record<string, unknown>)[key];
      if (v === undefined) continue;
      try {
        assertJson(v, ancestors);
      } catch (err) {
        if (err instanceof Invalid) err.path.push(`.${key}`);
        throw err;
      }
    }
  }
  ancestors.pop();
}

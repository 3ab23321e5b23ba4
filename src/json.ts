import { validateInteger } from "./config.js";
import { NotJsonError, PayloadTooLargeError } from "./errors.js";
import { findUnstorable, Invalid, UNSTORABLE_ESCAPE, UNSTORABLE_REASON } from "./json-storable.js";

/**
 * The default for `maxArgsBytes` and `maxResultBytes`: 32 MiB of JSON text (UTF-8). Postgres stores a jsonb value of
 * at most 255 MiB, and its size depends on the shape more than on the text: an array of small numbers takes 6 bytes
 * of jsonb per byte of text (measured on Postgres 15: 20 MB of `[1,1,…]` became 120 MB of jsonb, and 80 MB failed to
 * parse at all, "invalid memory alloc request"). 32 MiB of any shape fits.
 */
export const DEFAULT_MAX_PAYLOAD_BYTES = 32 * 1024 * 1024;

/**
 * The most JSON text (in characters) one statement carries in its jsonb document of a batch (args of an insert,
 * results of a completion): a batch over it is cut, so that the document fits jsonb whatever the shape, as above.
 */
export const STATEMENT_JSON_CHARS = 32 * 1024 * 1024;

/** jsonb's own limit, in bytes: the most `maxArgsBytes` or `maxResultBytes` may be. */
export const JSONB_MAX_BYTES = 0x0fffffff;

/** A `maxArgsBytes` or `maxResultBytes` option, checked, or the default when not given. */
export function payloadLimit(option: "maxArgsBytes" | "maxResultBytes", value: unknown): number {
  return validateInteger(option, value ?? DEFAULT_MAX_PAYLOAD_BYTES, 1, JSONB_MAX_BYTES);
}

/**
 * Checks that `value` survives a JSON round trip unchanged and that Postgres can store it, and returns its JSON
 * text. Refuses what `JSON.stringify` would drop or mangle silently: BigInt (throws), functions and symbols (vanish),
 * cycles (throw), `undefined` in arrays (becomes null), NaN and ±Infinity (become null), and objects that are not
 * plain (Map, Set, class instances lose their contents); and what jsonb refuses: a NUL character (\u0000) or a lone
 * UTF-16 surrogate in any string or key. Objects with a `toJSON` method, such as Date, are accepted as what `toJSON`
 * returns. `undefined` object properties are dropped, as JSON does. A getter or `toJSON` that throws, or nesting
 * deeper than the stack allows, is a NotJsonError whose `cause` is what was thrown. With `maxBytes`, text longer
 * than that in UTF-8 is a PayloadTooLargeError naming `option`.
 */
export function toJsonText(value: unknown, path: string, maxBytes = Infinity, option = "the limit"): string {
  try {
    assertJson(value, []);
  } catch (err) {
    if (err instanceof Invalid) throw notJson(path + err.path.reverse().join(""), err.reason, err.cause);
    throw notJson(path, problemOf(err), err);
  }
  const json = stringify(value, path);
  // JSON.stringify writes a NUL and a lone surrogate as escapes, and nothing else as those escapes: one scan of the
  // text (usually just the `includes`) instead of a test of every string.
  const escape = json.includes("\\u") ? UNSTORABLE_ESCAPE.exec(json) : null;
  if (escape) {
    // Rare: walk the value again for the path (a getter may answer differently the second time: then no path).
    let found: Invalid | null = null;
    try {
      found = findUnstorable(value, []);
    } catch {
      // the reason is known without the path
    }
    const reason = escape[0].endsWith("0000") ? UNSTORABLE_REASON.nul : UNSTORABLE_REASON.surrogate;
    throw notJson(path + (found?.path.reverse().join("") ?? ""), found?.reason ?? reason);
  }
  if (maxBytes < Infinity) assertJsonSize(json, path, maxBytes, option);
  return json;
}

/** JSON.stringify, its errors (nesting deeper than the stack, text longer than a string can be) as NotJsonError. */
function stringify(value: unknown, path: string): string {
  try {
    return JSON.stringify(value);
  } catch (err) {
    throw notJson(path, problemOf(err), err);
  }
}

/** Throws PayloadTooLargeError when `json` is longer than `maxBytes` in UTF-8. */
export function assertJsonSize(json: string, path: string, maxBytes: number, option: string): void {
  // UTF-8 takes at most 3 bytes per UTF-16 unit: the exact count is needed only near the limit.
  if (json.length * 3 <= maxBytes) return;
  const bytes = Buffer.byteLength(json, "utf8");
  if (bytes > maxBytes) throw new PayloadTooLargeError(path, bytes, maxBytes, option);
}

function notJson(path: string, problem: string, cause?: unknown): NotJsonError {
  const err = new NotJsonError(path, problem);
  // As `new Error(message, { cause })` sets it: own, not enumerable.
  if (cause !== undefined) Object.defineProperty(err, "cause", { value: cause, writable: true, configurable: true });
  return err;
}

/** What went wrong, for an error thrown while reading or serializing a value. */
function problemOf(err: unknown): string {
  if (isStackOverflow(err)) return "it is nested too deeply";
  if (err instanceof RangeError && /string length/i.test(err.message))
    return "its JSON is longer than a JavaScript string can be";
  return `reading it threw ${describe(err)}`;
}

function isStackOverflow(err: unknown): boolean {
  return err instanceof RangeError && /call stack/i.test(err.message);
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return typeof err === "string" ? JSON.stringify(err) : String(err);
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
    let json: unknown;
    try {
      json = (obj as { toJSON: () => unknown }).toJSON();
    } catch (err) {
      if (isStackOverflow(err)) throw err;
      throw new Invalid(`its toJSON() threw ${describe(err)}`, err);
    }
    assertJson(json, ancestors);
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
      let v: unknown;
      try {
        v = (obj as Record<string, unknown>)[key];
      } catch (err) {
        if (isStackOverflow(err)) throw err;
        const e = new Invalid(`reading it threw ${describe(err)}`, err);
        e.path.push(`.${key}`);
        throw e;
      }
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

// Compile-time checks for typed tasks (defineTask): the types JSON carries unchanged.

type JsonPrimitive = string | number | boolean | null;

/**
 * Why values of type T would not survive JSON unchanged, as string literal types naming the place (`Where`), or
 * never when they would. `any` and `unknown` pass; types nested deeper than ten levels are not looked into.
 */
export type NotJson<T, Where extends string, Depth extends unknown[] = []> = 0 extends 1 & T
  ? never
  : unknown extends T
    ? never
    : Depth["length"] extends 10
      ? never
      : T extends JsonPrimitive
        ? never
        : T extends undefined
          ? `${Where} may be undefined, which JSON turns into null`
          : T extends bigint
            ? `${Where} is a bigint, which JSON cannot carry (use a string)`
            : T extends symbol
              ? `${Where} is a symbol, which JSON cannot carry`
              : T extends (...args: never[]) => unknown
                ? `${Where} is a function, which JSON cannot carry`
                : T extends Date
                  ? `${Where} is a Date, which JSON turns into an ISO string (declare a string, pass date.toISOString())`
                  : T extends NotPlain
                    ? `${Where} is a class instance, which JSON cannot carry`
                    : T extends readonly unknown[]
                      ? number extends T["length"]
                        ? NotJson<T[number], `${Where}[]`, [...Depth, 0]>
                        : NotJsonEntries<T, Where, Depth>
                      : NotJsonProperties<T, Where, Depth>;

type NotPlain =
  | ReadonlyMap<unknown, unknown>
  | ReadonlySet<unknown>
  | WeakMap<object, unknown>
  | WeakSet<object>
  | RegExp
  | PromiseLike<unknown>
  | ArrayBuffer
  | ArrayBufferView
  | Error;

/** A tuple's entries. */
type NotJsonEntries<T extends readonly unknown[], Where extends string, Depth extends unknown[]> = Exclude<
  { [K in keyof T]: K extends `${number}` ? NotJson<T[K], `${Where}[${K}]`, [...Depth, 0]> : never }[number],
  undefined
>;

/** An object's properties; one that is optional or may be undefined is dropped by JSON, as if absent: allowed. */
type NotJsonProperties<T, Where extends string, Depth extends unknown[]> = {
  [K in keyof T]-?: K extends string | number
    ? NotJson<Exclude<T[K], undefined>, `${Where}.${K}`, [...Depth, 0]>
    : `${Where} has a symbol key, which JSON drops`;
}[keyof T];

/** A handler's parameters, as the args array: optional ones may be left out. */
type NotJsonParameters<A extends unknown[]> = Exclude<
  { [K in keyof A]-?: K extends `${number}` ? NotJson<Exclude<A[K], undefined>, `args[${K}]`> : never }[number],
  undefined
>;

/**
 * `unknown` when a handler taking A and returning R (or a promise of it) has JSON parameters and result, else an
 * object type whose one property names each problem: intersected with the handler's type, it makes a handler such
 * as `(when: Date) => …` fail to compile with a message that says why. A result of `undefined` (no return) is null.
 */
export type JsonChecked<A extends unknown[], R> = [
  NotJsonParameters<A> | NotJson<Exclude<Awaited<R>, undefined | void>, "result">,
] extends [never]
  ? unknown
  : {
      "a typed task's parameters and result must be JSON":
        NotJsonParameters<A> | NotJson<Exclude<Awaited<R>, undefined | void>, "result">;
    };

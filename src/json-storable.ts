// What Postgres cannot store in a JSON value or a text column (a NUL character, a lone UTF-16 surrogate), found
// cheaply in JSON text and, when there is one, located in the value for the error's path.

/**
 * Where a value failed and why. The path is collected on the way out, so that checking valid data (nearly all of
 * it) builds no path strings: one per array element and property was most of what checking a batch cost.
 */
export class Invalid extends Error {
  readonly path: string[] = [];
  constructor(
    readonly reason: string,
    cause?: unknown,
  ) {
    super(reason, cause === undefined ? undefined : { cause });
  }
}

/** A `\u0000` or `\ud800`–`\udfff` escape, not itself escaped (an even run of backslashes before it). */
export const UNSTORABLE_ESCAPE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f])/;

/** A surrogate that is not half of a pair. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** A NUL, or a lone surrogate. */
const UNSTORABLE_CHAR = new RegExp(`\\0|${LONE_SURROGATE.source}`);

export const UNSTORABLE_REASON = {
  nul: "it contains a NUL character (\\u0000), which Postgres cannot store",
  surrogate:
    "it contains a lone UTF-16 surrogate (half of a pair, e.g. \\uD800), which is not Unicode and Postgres cannot store",
};

function unstorableReason(s: string): string | null {
  const m = UNSTORABLE_CHAR.exec(s);
  if (!m) return null;
  return m[0] === "\0" ? UNSTORABLE_REASON.nul : UNSTORABLE_REASON.surrogate;
}

/**
 * `text` as Postgres can store it in a text column: each NUL written as the six characters `\u0000`, each lone
 * surrogate replaced by U+FFFD. For error messages, which are kept readable rather than refused.
 */
export function storableText(text: string): string {
  if (!UNSTORABLE_CHAR.test(text)) return text;
  return text.replace(/\0/g, "\\u0000").replace(LONE_SURROGATE, "\ufffd");
}

/** The first string or key in `value` that Postgres cannot store, with its path; `value` passed assertJson. */
export function findUnstorable(value: unknown, ancestors: object[]): Invalid | null {
  if (typeof value === "string") {
    const reason = unstorableReason(value);
    return reason === null ? null : new Invalid(reason);
  }
  if (value === null || typeof value !== "object" || ancestors.includes(value)) return null;
  ancestors.push(value);
  let found: Invalid | null = null;
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") {
    found = findUnstorable((value as { toJSON: () => unknown }).toJSON(), ancestors);
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length && !found; i++) {
      found = findUnstorable(value[i], ancestors);
      found?.path.push(`[${i}]`);
    }
  } else {
    for (const key of Object.keys(value)) {
      const reason = unstorableReason(key);
      if (reason !== null) {
        found = new Invalid(`a key ${reason.replace(/^it /, "")}`);
        found.path.push(`[${JSON.stringify(key)}]`);
        break;
      }
      found = findUnstorable((value as Record<string, unknown>)[key], ancestors);
      if (found) {
        found.path.push(`.${key}`);
        break;
      }
    }
  }
  ancestors.pop();
  return found;
}

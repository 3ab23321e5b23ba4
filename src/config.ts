import { inspect } from "node:util";
import { isEmbeddedUrl, parseEmbeddedUrl } from "./embedded/url.js";
import { ConfigError, InvalidNameError, InvalidOptionError } from "./errors.js";
import { parseRedisTarget } from "./notify/redis-target.js";
import { resolveRedisTls, type RedisTlsOptions } from "./notify/redis-tls.js";

export const DEFAULT_SCHEMA = "skiplock";
export const DEFAULT_QUEUE = "default";
/** Seconds a task may run before it is failed with a timeout error. */
export const DEFAULT_TIMEOUT = 300;

// Names reach SQL only as quoted identifiers or parameters, and Redis only inside channel names; these rules keep
// them readable in logs and unambiguous in channel names as well as safe.
const SCHEMA_RE = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const QUEUE_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/;
const TASK_NAME_RE = /^[A-Za-z_$][A-Za-z0-9_$.:/-]{0,199}$/;

export function validateSchemaName(schema: unknown): string {
  if (typeof schema !== "string" || !SCHEMA_RE.test(schema) || schema.toLowerCase().startsWith("pg_")) {
    throw new InvalidNameError(
      "schema name",
      schema,
      "use 1-63 letters, digits and underscores, not starting with a digit or pg_",
    );
  }
  return schema;
}

export function validateQueueName(queue: unknown): string {
  if (typeof queue !== "string" || !QUEUE_RE.test(queue)) {
    throw new InvalidNameError("queue name", queue, "use 1-128 letters, digits, '_', '.', ':' or '-'");
  }
  return queue;
}

export function validateTaskName(name: unknown): string {
  if (typeof name !== "string" || !TASK_NAME_RE.test(name)) {
    throw new InvalidNameError(
      "task name",
      name,
      "use 1-200 letters, digits, '_', '$', '.', ':', '/' or '-', starting with a letter, '_' or '$'",
    );
  }
  return name;
}

/**
 * A value as a message shows it: JSON where JSON can say it (so the string "5" reads "5" with its quotes, not 5),
 * else what JavaScript calls it (undefined, NaN, Infinity, 10n, a function). Cut short past 60 characters.
 */
export function describeValue(value: unknown): string {
  let text: string | undefined;
  if (typeof value === "number" && !Number.isFinite(value)) text = String(value);
  else if (typeof value === "bigint") text = `${value}n`;
  else if (typeof value === "function") text = "a function";
  else if (value instanceof Date)
    text = Number.isNaN(value.getTime()) ? "an invalid Date" : `Date ${value.toISOString()}`;
  else {
    try {
      text = JSON.stringify(value);
    } catch {
      // A cycle, a BigInt inside, a throwing toJSON: say what kind of thing it is.
    }
    text ??= value === undefined ? "undefined" : typeof value === "symbol" ? String(value) : "a value JSON cannot show";
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** A finite number of seconds within [min, max]; used for every time option. */
export function validateSeconds(option: string, value: unknown, min = 0, max = 10 * 365 * 24 * 3600): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidOptionError(option, `expected seconds between ${min} and ${max}, got ${describeValue(value)}`);
  }
  return value;
}

/** A finite number of days (fractions allowed) within [0, max]: an age, such as purge's `olderThanDays`. */
export function validateDays(option: string, value: unknown, max = 100 * 365): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max) {
    throw new InvalidOptionError(option, `expected days between 0 and ${max}, got ${describeValue(value)}`);
  }
  return value;
}

export function validateInteger(option: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(option, `expected an integer between ${min} and ${max}, got ${describeValue(value)}`);
  }
  return value;
}

export function validateDatabaseUrl(url: unknown): string {
  if (typeof url !== "string" || url === "") {
    throw new ConfigError(
      "no database URL: set DATABASE_URL or pass --database-url (e.g. postgres://localhost/app), " +
        "or to try skiplock without a server, the embedded database: DATABASE_URL=pglite:./.skiplock/db",
    );
  }
  if (isEmbeddedUrl(url)) {
    parseEmbeddedUrl(url); // throws on a malformed one
    return url;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(
      `malformed database URL ${JSON.stringify(redactUrl(url))}: expected postgres://user:password@host:port/db, ` +
        "with special characters in the password percent-encoded (/ as %2F, @ as %40)",
    );
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new ConfigError(
      `database URL must start with postgres://, postgresql:// or pglite: (embedded), got ${parsed.protocol}//`,
    );
  }
  return url;
}

/** Checks a Redis URL: redis://, rediss://, or a Sentinel group as redis+sentinel:// (see notify/redis-target.ts). */
export function validateRedisUrl(url: unknown): string {
  return parseRedisTarget(url).url;
}

/** Query parameters that carry secrets: `password`, `sslpassword`, tokens, keys. */
const SECRET_PARAM = /([?&;][^=&#;]*(?:pass|secret|token|key)[^=&#;]*=)[^&#;]*/gi;

/**
 * The URL with every secret in it replaced by `***`, for messages and logs: the password of `user:pass@` (however
 * it is written: a password holding `/`, `?`, `#` or `@` unescaped makes a URL that parsers read differently, so
 * everything from the user name's `:` to the last `@` is hidden), and secret query parameters
 * (`?password=…`, `sslpassword`, `token`, `key`…). Works on strings that are not valid URLs, as a malformed
 * URL is exactly what an error message may quote.
 */
export function redactUrl(url: string): string {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(url);
  const start = scheme ? scheme[0].length : 0;
  const at = url.lastIndexOf("@");
  const colon = url.indexOf(":", start);
  // A user name cannot hold these unescaped: a colon after one of them does not start a password.
  const isPassword = at > colon && colon !== -1 && !/[/?#@]/.test(url.slice(start, colon));
  const out = isPassword ? `${url.slice(0, colon)}:***${url.slice(at)}` : url;
  return out.replace(SECRET_PARAM, "$1***");
}

/** URL passwords and secret query parameters anywhere in a text, such as a log line; each stops at a space or quote. */
const SECRET_USERINFO_IN_TEXT = /([A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s"'/?#@:]*):[^\s"']*@/g;
const SECRET_PARAM_IN_TEXT = /([?&;][^=&#;\s"']*(?:pass|secret|token|key)[^=&#;\s"']*=)[^&#;\s"']*/gi;

/** What redactUrl hides, in a text that holds URLs among other words (a log line). */
export function redactSecrets(text: string): string {
  return text.replace(SECRET_USERINFO_IN_TEXT, "$1:***@").replace(SECRET_PARAM_IN_TEXT, "$1***");
}

/**
 * Where a client or worker connects. The URLs may hold passwords, so they are not enumerable, and the object
 * prints (util.inspect, console.log) and serializes (JSON.stringify) with them redacted: a client or worker
 * logged whole shows no secret.
 */
export interface ConnectionConfig {
  readonly databaseUrl: string;
  /** Absent: no Redis, workers and waiters poll. */
  readonly redisUrl: string | undefined;
  /** CA, client certificate and key for a rediss:// (or rediss+sentinel://) URL; absent: the system's CAs. */
  readonly redisTls?: RedisTlsOptions | undefined;
  readonly schema: string;
}

/** A ConnectionConfig whose URLs stay out of enumeration, inspection and JSON (see ConnectionConfig). */
export function connectionConfig(
  databaseUrl: string,
  redisUrl: string | undefined,
  schema: string,
  redisTls?: RedisTlsOptions,
): ConnectionConfig {
  const config = { schema };
  Object.defineProperties(config, {
    databaseUrl: { value: databaseUrl, enumerable: false },
    redisUrl: { value: redisUrl, enumerable: false },
    // A client key is a secret: kept out of enumeration, inspection and JSON like the URLs.
    redisTls: { value: redisTls, enumerable: false },
    toJSON: { value: () => redactedConnection(config as ConnectionConfig), enumerable: false },
    [inspect.custom]: {
      value: (_depth: number, options: object) => inspect(redactedConnection(config as ConnectionConfig), options),
      enumerable: false,
    },
  });
  return Object.freeze(config) as ConnectionConfig;
}

/** What a connection config shows of itself: its URLs redacted. */
export function redactedConnection(config: ConnectionConfig): {
  databaseUrl: string;
  redisUrl: string | null;
  schema: string;
} {
  return {
    databaseUrl: redactUrl(config.databaseUrl),
    redisUrl: config.redisUrl === undefined ? null : redactUrl(config.redisUrl),
    schema: config.schema,
  };
}

export interface ConnectionOptions {
  databaseUrl?: string;
  redisUrl?: string | null;
  /**
   * TLS settings for a rediss:// or rediss+sentinel:// URL: `ca` (PEM, for a private CA), `cert` and `key` (a client
   * certificate), `rejectUnauthorized`, `servername`. Default: REDIS_TLS_CA, REDIS_TLS_CERT, REDIS_TLS_KEY (file paths).
   */
  redisTls?: RedisTlsOptions;
  schema?: string;
}

/** Options first, then DATABASE_URL / REDIS_URL / SKIPLOCK_SCHEMA, then defaults. `redisUrl: null` turns Redis off. */
export function resolveConnection(options: ConnectionOptions = {}, env = process.env): ConnectionConfig {
  const databaseUrl = validateDatabaseUrl(options.databaseUrl ?? env.DATABASE_URL);
  const rawRedis = options.redisUrl === null ? undefined : (options.redisUrl ?? (env.REDIS_URL || undefined));
  const redisUrl = rawRedis === undefined ? undefined : validateRedisUrl(rawRedis);
  const schema = validateSchemaName(options.schema ?? (env.SKIPLOCK_SCHEMA || DEFAULT_SCHEMA));
  const redisTls = redisUrl === undefined ? undefined : resolveRedisTls(redisUrl, options.redisTls, env);
  return connectionConfig(databaseUrl, redisUrl, schema, redisTls);
}

/**
 * A client's queue allow-list: the `queues` option, else SKIPLOCK_QUEUES (comma-separated), each name validated.
 * Null (any queue) when neither is given or the list is empty.
 */
export function resolveQueueAllowList(option: unknown, env = process.env): ReadonlySet<string> | null {
  let names: unknown[];
  if (option !== undefined) {
    if (!Array.isArray(option)) {
      throw new InvalidOptionError("queues", `expected an array of queue names, got ${describeValue(option)}`);
    }
    names = option;
  } else {
    names = (env.SKIPLOCK_QUEUES ?? "")
      .split(",")
      .map((q) => q.trim())
      .filter((q) => q !== "");
  }
  if (names.length === 0) return null;
  return new Set(names.map((q) => validateQueueName(q)));
}

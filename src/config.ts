import { ConfigError, InvalidNameError, InvalidOptionError } from "./errors.js";

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

/** A finite number of seconds within [min, max]; used for every time option. */
export function validateSeconds(option: string, value: unknown, min = 0, max = 10 * 365 * 24 * 3600): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidOptionError(option, `expected seconds between ${min} and ${max}, got ${String(value)}`);
  }
  return value;
}

export function validateInteger(option: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(option, `expected an integer between ${min} and ${max}, got ${String(value)}`);
  }
  return value;
}

export function validateDatabaseUrl(url: unknown): string {
  if (typeof url !== "string" || url === "") {
    throw new ConfigError("no database URL: set DATABASE_URL or pass --database-url (e.g. postgres://localhost/app)");
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`malformed database URL ${JSON.stringify(redactUrl(url))}: expected postgres://user@host:port/db`);
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new ConfigError(`database URL must start with postgres:// or postgresql://, got ${parsed.protocol}//`);
  }
  return url;
}

export function validateRedisUrl(url: unknown): string {
  if (typeof url !== "string" || url === "") throw new ConfigError("empty Redis URL");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`malformed Redis URL ${JSON.stringify(redactUrl(url))}: expected redis://host:port`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new ConfigError(`Redis URL must start with redis:// or rediss://, got ${parsed.protocol}//`);
  }
  return url;
}

/** Hides a password in a URL before it is printed. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@/]*@/, "//$1:***@");
}

export interface ConnectionConfig {
  databaseUrl: string;
  /** Absent: no Redis, workers and waiters poll. */
  redisUrl: string | undefined;
  schema: string;
}

export interface ConnectionOptions {
  databaseUrl?: string;
  redisUrl?: string | null;
  schema?: string;
}

/** Options first, then DATABASE_URL / REDIS_URL / SKIPLOCK_SCHEMA, then defaults. `redisUrl: null` turns Redis off. */
export function resolveConnection(options: ConnectionOptions = {}, env = process.env): ConnectionConfig {
  const databaseUrl = validateDatabaseUrl(options.databaseUrl ?? env.DATABASE_URL);
  const rawRedis = options.redisUrl === null ? undefined : (options.redisUrl ?? (env.REDIS_URL || undefined));
  const redisUrl = rawRedis === undefined ? undefined : validateRedisUrl(rawRedis);
  const schema = validateSchemaName(options.schema ?? (env.SKIPLOCK_SCHEMA || DEFAULT_SCHEMA));
  return { databaseUrl, redisUrl, schema };
}

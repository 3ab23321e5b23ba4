import { redactUrl } from "../config.js";
import { DatabaseUnavailableError, SchemaNotReadyError, SkiplockError } from "../errors.js";
import { sessionLost } from "./pgbouncer.js";

/** Marks an error raised while a connection was being opened (see failedToConnect). */
const CONNECT_FAILED = Symbol("skiplock.connectFailed");

/** Notes that `err` was raised while a connection was being opened (pool.ts, Client). */
export function markConnectFailed(err: unknown): void {
  if (err && typeof err === "object") Object.defineProperty(err, CONNECT_FAILED, { value: true });
}

/** Whether `err` (or the error it wraps, as the pool's connection timeout does) was raised while connecting. */
export function failedToConnect(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (CONNECT_FAILED in e) return true;
  }
  return false;
}

/** Socket errors that mean the server could not be reached, or the connection to it was lost. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/** Errors that mean "the connection went away": worth retrying with a fresh connection. */
export function isConnectionError(err: unknown): boolean {
  // Client-facing paths report these as DatabaseUnavailableError; what counts is the driver's error inside.
  if (err instanceof DatabaseUnavailableError) return isConnectionError(err.cause);
  const e = err as { code?: string; message?: string } | undefined;
  if (!e) return false;
  const code = e.code ?? "";
  if (NETWORK_CODES.has(code)) return true;
  // 57P01 admin_shutdown (pg_terminate_backend), 57P02 crash_shutdown, 57P03 cannot_connect_now, 08xxx connection.
  if (code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03") return true;
  const m = e.message ?? "";
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable/i.test(m);
}

/**
 * Errors a retry is expected to cure: a lost connection, or a deadlock, serialization failure or lock timeout
 * (40P01, 40001, 55P03), which Postgres raises by design under concurrency. Logged as warnings, not errors.
 */
export function isTransientError(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return isConnectionError(err) || code === "40P01" || code === "40001" || code === "55P03";
}

export function databaseUnavailable(url: string, err: unknown): DatabaseUnavailableError {
  const detail = err instanceof Error ? err.message || (err as { code?: string }).code || String(err) : String(err);
  return new DatabaseUnavailableError(`cannot connect to Postgres at ${redactUrl(url)}: ${detail}`, { cause: err });
}

export function schemaNotReady(schema: string, cause?: unknown): SchemaNotReadyError {
  return new SchemaNotReadyError(
    `schema "${schema}" has no skiplock tables: run \`skiplock migrate\` first`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * The typed error a driver error stands for, on the paths a caller sees (the client's reads and writes):
 * DatabaseUnavailableError when Postgres cannot be reached or refuses us (anything raised while connecting, a lost
 * connection, 28xxx wrong password or user, 3D000 no such database), SchemaNotReadyError when our schema or its
 * tables do not exist (3F000, 42P01 naming the schema), PoolerSessionError when a named statement shows the
 * connection is shared (see sessionLost). Any other error is returned as it is.
 */
export function classifyDatabaseError(err: unknown, databaseUrl: string, schema: string): unknown {
  if (err instanceof SkiplockError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (
    failedToConnect(err) ||
    isConnectionError(err) ||
    (typeof code === "string" && code.startsWith("28")) ||
    code === "3D000"
  ) {
    return databaseUnavailable(databaseUrl, err);
  }
  const message = (err as { message?: unknown } | null)?.message;
  if (code === "3F000" || (code === "42P01" && typeof message === "string" && message.includes(`"${schema}.`))) {
    return schemaNotReady(schema, err);
  }
  return sessionLost(err);
}

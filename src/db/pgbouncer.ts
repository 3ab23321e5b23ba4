import { describeValue } from "../config.js";
import { InvalidOptionError, PoolerSessionError } from "../errors.js";

/**
 * Whether skiplock talks to Postgres through a pooler that keeps no session between transactions (PgBouncer with
 * `pool_mode = transaction`): the `pgbouncer` option when given, else SKIPLOCK_PGBOUNCER (`1`/`true` or
 * `0`/`false`/empty), else false. In that mode statements go unnamed and no connection gets session settings; see
 * docs/architecture.md, PgBouncer and connections.
 */
export function resolvePgbouncer(option: unknown, env: NodeJS.ProcessEnv = process.env): boolean {
  if (option !== undefined) {
    if (typeof option !== "boolean") {
      throw new InvalidOptionError("pgbouncer", `expected true or false, got ${describeValue(option)}`);
    }
    return option;
  }
  const raw = (env.SKIPLOCK_PGBOUNCER ?? "").trim().toLowerCase();
  if (raw === "" || raw === "0" || raw === "false") return false;
  if (raw === "1" || raw === "true") return true;
  throw new InvalidOptionError("SKIPLOCK_PGBOUNCER", `expected 1, true, 0 or false, got ${describeValue(raw)}`);
}

/**
 * The PoolerSessionError a driver error stands for, or the error as it is. A statement skiplock prepared on this
 * connection that is gone (26000), or one it is preparing that is already there (42P05), is proof that the client
 * connection does not keep one server connection: the one detection that cannot be wrong, and it costs nothing
 * until it happens (see docs/architecture.md, Detection).
 */
export function sessionLost(err: unknown): unknown {
  const e = err as { code?: unknown; message?: unknown } | null;
  if ((e?.code !== "26000" && e?.code !== "42P05") || typeof e.message !== "string") return err;
  if (!/prepared statement "skiplock_/.test(e.message)) return err;
  return new PoolerSessionError(
    `${e.message}: Postgres is reached through a pooler that shares server connections between transactions ` +
      "(PgBouncer with pool_mode = transaction); set pgbouncer: true (SKIPLOCK_PGBOUNCER=1, --pgbouncer)",
    { cause: err },
  );
}

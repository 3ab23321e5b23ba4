import { describeValue } from "../config.js";
import { InvalidOptionError } from "../errors.js";

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

import type { Logger } from "../logger.js";
import type { Queryable } from "./statements.js";

/**
 * Every claim and completion leaves a dead row version behind in the live partition; without vacuum the claim index
 * fills with them and the partition only grows. Says so once, if nothing will clean up.
 */
export async function warnIfNoAutovacuum(q: Queryable, schema: string, logger: Logger): Promise<void> {
  const { rows } = await q.query<{ server: string; table: string[] | null }>({
    text: `SELECT current_setting('autovacuum') AS server,
                  (SELECT reloptions FROM pg_class WHERE oid = to_regclass($1)) AS table`,
    values: [`"${schema}".tasks_live`],
  });
  const off = rows[0]?.server !== "on" || (rows[0]?.table ?? []).includes("autovacuum_enabled=false");
  if (off) {
    logger.warn(
      "autovacuum is off for the tasks table: dead row versions will pile up and claims slow down; " +
        "turn autovacuum on, or VACUUM the tasks table on a schedule",
      { schema },
    );
  }
}

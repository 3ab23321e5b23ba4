import { createHash } from "node:crypto";
import type pg from "pg";
import { retryMoved } from "./moved-rows.js";

/** Anything that runs a query: a pg Pool, a pooled client, or a plain pg Client (the caller's transaction). */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<R>>;
}

/**
 * A hot statement: a fixed text for one schema. With a name it is prepared once per connection and its plan may be
 * cached; without one it is planned at each run for the values it is given.
 */
export interface Statement {
  name?: string;
  text: string;
}

function statement(kind: string, text: string, prepared: boolean): Statement {
  if (!prepared) return { text };
  // Prepared-statement names must be unique per text on a connection; several schemas may share one pool.
  const digest = createHash("sha1").update(text).digest("hex").slice(0, 12);
  return { name: `skiplock_${kind}_${digest}`, text };
}

/** The statement without its name, for a pooler that keeps no session (see SessionlessClient in pool.ts). */
export function unnamed(stmt: Statement): Statement {
  return { text: stmt.text };
}

/**
 * A statement whose text depends only on the tasks table's name: built once per schema. `prepared: false` is for
 * statements that carry a batch of ids: Postgres then plans each run knowing how many there are, where a cached
 * generic plan, made for a batch of unknown size, can join a thousand ids against every running task.
 */
export function perTable(
  kind: string,
  build: (tasks: string) => string,
  options: { prepared?: boolean } = {},
): (tasks: string) => Statement {
  const cache = new Map<string, Statement>();
  return (tasks) => {
    let s = cache.get(tasks);
    if (!s) cache.set(tasks, (s = statement(kind, build(tasks), options.prepared ?? true)));
    return s;
  };
}

/** Runs a hot statement; run again when it met a row that moved partition under it (see moved-rows.js). */
export function run<R extends pg.QueryResultRow>(
  q: Queryable,
  stmt: Statement,
  values: unknown[],
): Promise<pg.QueryResult<R>> {
  const config = stmt.name === undefined ? { text: stmt.text, values } : { name: stmt.name, text: stmt.text, values };
  return retryMoved(() => q.query<R>(config));
}

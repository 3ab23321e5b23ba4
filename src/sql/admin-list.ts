import { run, type Queryable, type Statement } from "../db/statements.js";
import { TASK_COLUMNS, type TaskRow, type TaskStatus } from "../task.js";

/*
 * Tasks newest first (by id), a page at a time: `after` is the last id of the previous page (keyset paging, so a
 * page deep in a million rows costs what the first does; OFFSET would read every row before it).
 *
 * Each status asked for is its own branch, ordered by id and limited, and Postgres merges the branches: a branch
 * prunes to its partition and, for FAILED and CANCELLED, walks tasks_done_unsuccessful_idx (status, id) newest first
 * (migration 0005), so listing a few failures among a million completed rows reads only those. `status = ANY(...)`
 * in one branch would instead sort every matching row. With no status, one branch merges both partitions' primary
 * keys backwards. Queue, name and meta filters are checked on the rows read: on finished rows they read newest first
 * until the page fills, so a filter that matches few of many COMPLETED rows reads far back (see docs/task-api.md, Managing tasks).
 * The text is built from which filters are given, every value a parameter; not prepared, so each call is planned
 * with its values (partition pruning and the partial index need the status known at planning).
 */

export interface ListFilter {
  statuses: readonly TaskStatus[];
  queue: string | null;
  name: string | null;
  /** JSON text of an object the task's meta must contain. */
  metaJson: string | null;
  after: string | null;
  /**
   * PENDING tasks only: "due" (run_at has passed) or "future" (scheduled later); the dashboard's "due now" and
   * "scheduled" lists. Absent: either.
   */
  runAt?: "due" | "future";
  /** Running tasks only: those whose last heartbeat is older than this many seconds (the dashboard's "stale" list). */
  heartbeatOlderThan?: number;
  /** Read only ids from this one up (with `after`, a window of ids: see listTaskPage's bounded scan). */
  fromId?: string;
  /** Rows to read: the page size plus one, to know whether another page follows. */
  limit: number;
}

function listStatement(tasks: string, f: ListFilter): { stmt: Statement; values: unknown[] } {
  const values: unknown[] = [f.limit];
  const param = (value: unknown): string => `$${values.push(value)}`;
  const shared: string[] = [];
  if (f.queue !== null) shared.push(`t.queue = ${param(f.queue)}`);
  if (f.name !== null) shared.push(`t.name = ${param(f.name)}`);
  if (f.metaJson !== null) shared.push(`t.meta @> ${param(f.metaJson)}::jsonb`);
  if (f.after !== null) shared.push(`t.id < ${param(f.after)}::bigint`);
  if (f.fromId !== undefined) shared.push(`t.id >= ${param(f.fromId)}::bigint`);
  if (f.runAt === "due") shared.push("t.run_at <= now()");
  if (f.runAt === "future") shared.push("t.run_at > now()");
  if (f.heartbeatOlderThan !== undefined) {
    shared.push(`t.heartbeat_at < now() - ${param(f.heartbeatOlderThan)}::float8 * interval '1 second'`);
  }
  const branch = (status: string | null): string => {
    const where = status === null ? shared : [`t.status = ${status}`, ...shared];
    return `SELECT ${TASK_COLUMNS} FROM ${tasks} t${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY t.id DESC LIMIT $1`;
  };
  if (f.statuses.length <= 1) {
    const only = f.statuses[0];
    return { stmt: { text: branch(only === undefined ? null : param(only)) }, values };
  }
  const branches = f.statuses.map((s) => `(${branch(param(s))})`);
  return { stmt: { text: `${branches.join(" UNION ALL ")} ORDER BY id DESC LIMIT $1` }, values };
}

/** Up to `f.limit` tasks matching `f`, newest first. */
export async function listTaskRows(q: Queryable, tasks: string, f: ListFilter): Promise<TaskRow[]> {
  const { stmt, values } = listStatement(tasks, f);
  const { rows } = await run<TaskRow>(q, stmt, values);
  return rows;
}

/** The newest task's id plus one (the `after` that starts a list at the newest task), or null for an empty table. */
export async function idCeiling(q: Queryable, tasks: string): Promise<string | null> {
  const { rows } = await run<{ top: string | null }>(
    q,
    { text: `SELECT (max(id) + 1)::text AS top FROM ${tasks}` },
    [],
  );
  return rows[0]?.top ?? null;
}

import { perTable, run, type Queryable } from "../db/statements.js";
import type { TaskRow } from "../task.js";
import { finished, live } from "./live.js";

/*
 * The waiters of a client re-read their rows together: one statement for a batch of ids, not one per waiter. Only
 * finished rows come back whole (their result is what the waiter returns); a row still running comes back as its
 * status alone, so a safety-net read of thousands of waited tasks does not carry their args every time; an id with
 * neither was never a task (or was deleted). Each id is two primary-key probes, one per partition (live.ts). Not
 * prepared, so each run is planned for the number of ids it carries (see perTable).
 */
const readStatement = perTable(
  "waited",
  (tasks) => `SELECT w.id::text AS waited, l.status AS live_status, d.*
     FROM unnest($1::bigint[]) AS w(id)
     LEFT JOIN ${tasks} d ON d.id = w.id AND ${finished("d")}
     LEFT JOIN ${tasks} l ON l.id = w.id AND ${live("l")}`,
  { prepared: false },
);

export type WaitedRow =
  { id: string; state: "finished"; row: TaskRow } | { id: string; state: "live" } | { id: string; state: "missing" };

/** Where each of `ids` stands: finished (with its whole row), still live, or missing. */
export async function readWaitedTasks(q: Queryable, tasks: string, ids: readonly string[]): Promise<WaitedRow[]> {
  const { rows } = await run<TaskRow & { waited: string; live_status: string | null }>(q, readStatement(tasks), [ids]);
  return rows.map((r): WaitedRow => {
    if (r.id !== null) {
      const { waited: _w, live_status: _l, ...row } = r;
      return { id: r.waited, state: "finished", row };
    }
    return { id: r.waited, state: r.live_status === null ? "missing" : "live" };
  });
}

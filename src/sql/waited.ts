import { perTable, run, type Queryable } from "../db/statements.js";
import type { StoredProgress, TaskRow } from "../task.js";
import { finished, live } from "./live.js";

/*
 * Waiters re-read their rows in one statement per batch of ids: a finished row comes back whole, a live one as its
 * status and progress alone (a safety-net read need not carry args), an id in neither is missing. Two primary-key probes per id,
 * one per partition; not prepared, so planned for the number of ids. See docs/architecture.md, Waiting for a result.
 */
const readStatement = perTable(
  "waited",
  (tasks) => `SELECT w.id::text AS waited, l.status AS live_status, l.progress AS live_progress, d.*
     FROM unnest($1::bigint[]) AS w(id)
     LEFT JOIN ${tasks} d ON d.id = w.id AND ${finished("d")}
     LEFT JOIN ${tasks} l ON l.id = w.id AND ${live("l")}`,
  { prepared: false },
);

export type WaitedRow =
  | { id: string; state: "finished"; row: TaskRow }
  | { id: string; state: "live"; progress: StoredProgress | null }
  | { id: string; state: "missing" };

/** Where each of `ids` stands: finished (with its whole row), still live, or missing. */
export async function readWaitedTasks(q: Queryable, tasks: string, ids: readonly string[]): Promise<WaitedRow[]> {
  const { rows } = await run<
    TaskRow & { waited: string; live_status: string | null; live_progress: StoredProgress | null }
  >(q, readStatement(tasks), [ids]);
  return rows.map((r): WaitedRow => {
    if (r.id !== null) {
      const { waited: _w, live_status: _l, live_progress: _p, ...row } = r;
      return { id: r.waited, state: "finished", row };
    }
    if (r.live_status === null) return { id: r.waited, state: "missing" };
    return { id: r.waited, state: "live", progress: r.live_progress };
  });
}

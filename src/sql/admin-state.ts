import { perTable, run, type Queryable } from "../db/statements.js";
import type { TaskStatus } from "../task.js";
import { live } from "./live.js";

/*
 * Where a task stands, read after a management call changed nothing, to say why: its status, and for a task with a
 * unique key, the live task holding that key (if another does). Two primary-key probes, one per partition, and one
 * probe of the unique-key index. Only ever on the refusal path.
 */
const stateStatement = perTable(
  "admin_state",
  (tasks) => `SELECT t.status, t.attempt, t.name, t.queue, t.unique_key,
          (SELECT h.id::text FROM ${tasks} h
            WHERE h.unique_key = t.unique_key AND NOT h.unique_superseded AND ${live("h")} AND h.id <> t.id
            LIMIT 1) AS holder
     FROM ${tasks} t
    WHERE t.id = $1`,
);

export interface TaskState {
  status: TaskStatus;
  attempt: number;
  name: string;
  queue: string;
  unique_key: string | null;
  /** Another live task holding this task's unique key, or null. */
  holder: string | null;
}

/**
 * The condition an action's expectation adds (task-expectation.ts), on parameters $n and $n+1: the status and
 * attempt the caller saw, each null when not given. Checked on the locked row, like the action's own status check.
 */
export const expected = (alias: string, n: number): string =>
  `($${n}::text IS NULL OR ${alias}.status = $${n}::text) AND ($${n + 1}::int IS NULL OR ${alias}.attempt = $${n + 1}::int)`;

/** The task's status and unique-key holder, or null when no task has that id. */
export async function readTaskState(q: Queryable, tasks: string, id: string): Promise<TaskState | null> {
  const { rows } = await run<TaskState>(q, stateStatement(tasks), [id]);
  return rows[0] ?? null;
}

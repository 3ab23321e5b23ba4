import { live } from "./live.js";

/*
 * How every statement that names tasks by (id, attempt) reaches them: one primary-key lookup per task, locked, and
 * the lease checked on the row it locked. The lookup names the primary key alone (in the live partition, see
 * live.ts), behind OFFSET 0, which keeps Postgres from pushing the other conditions into it: given
 * `status = 'PROGRESS'`, the planner could walk the running-task index instead, and did whenever its statistics
 * said that index was nearly empty (as they do after a VACUUM between bursts, or before any ANALYZE). Every lookup
 * then read every running task: a heartbeat of 1,000 held tasks with 5,000 running took 1.2 s (5.6 ms this way),
 * minutes in a drain, all the while holding row locks that outcome writes waited for; a batch of 500 completions
 * with 200,000 running took 160 ms.
 */

export interface HeldOptions {
  /** Skip rows another transaction has locked, instead of waiting for them (and checking them once released). */
  skipLocked?: boolean;
  /** A further condition on the locked row, `l` (columns status, attempt, worker_id, started_at, timeout). */
  also?: string;
}

/**
 * A `held` CTE: the rows of CTE `d` (columns id, attempt, ...) whose task this worker (`worker`, a parameter such
 * as "$5") still holds under that attempt, each task locked. Statements then change exactly
 * `ANY (ARRAY(SELECT id FROM held))`, again through the primary key.
 */
export function held(tasks: string, worker: string, options: HeldOptions = {}): string {
  return `held AS MATERIALIZED (
     SELECT d.* FROM d CROSS JOIN LATERAL (
            SELECT t.status, t.attempt, t.worker_id, t.started_at, t.timeout FROM ${tasks} t
             WHERE t.id = d.id AND ${live("t")}
            OFFSET 0
               FOR UPDATE${options.skipLocked ? " SKIP LOCKED" : ""}
           ) l
      WHERE l.status = 'PROGRESS' AND l.attempt = d.attempt AND l.worker_id = ${worker}${options.also ? ` AND ${options.also}` : ""}
   )`;
}

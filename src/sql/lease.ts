import { live } from "./live.js";

/*
 * How every statement that names tasks by (id, attempt) reaches them: one primary-key lookup per task in tasks_live,
 * behind OFFSET 0 so no other condition is pushed into it, locked, and the lease checked on the locked row. Given
 * `status = 'PROGRESS'`, the planner walked the running-task index whenever statistics called it nearly empty: a
 * heartbeat of 1,000 tasks with 5,000 running took 1.2 s instead of 5.6 ms. See docs/architecture.md, The lease.
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

import { FINAL_STATUSES, TASK_STATUSES, type TaskStatus } from "../task.js";

/*
 * The tasks table is partitioned by status (migration 0003): tasks_live holds the PENDING and PROGRESS rows,
 * tasks_done the finished ones. A statement about live rows that names them by id says so with `live(alias)`:
 * Postgres then plans it for tasks_live alone, instead of also searching tasks_done, whose primary key holds every
 * finished task the table keeps. The condition names the partition, not a status, so it implies neither partial
 * index's predicate (status = 'PENDING', status = 'PROGRESS') and cannot lead the planner to walk one of those
 * instead of the primary key (see lease.ts).
 */
const statusIn = (alias: string, statuses: readonly TaskStatus[]): string =>
  `${alias}.status IN (${statuses.map((s) => `'${s}'`).join(", ")})`;

const LIVE = TASK_STATUSES.filter((s) => !FINAL_STATUSES.has(s));
const FINISHED = [...FINAL_STATUSES];

export const live = (alias: string): string => statusIn(alias, LIVE);

/** The same for finished rows: tasks_done alone. */
export const finished = (alias: string): string => statusIn(alias, FINISHED);

/*
 * The tasks table is partitioned by status (migration 0003): tasks_live holds the PENDING and PROGRESS rows,
 * tasks_done the finished ones. A statement about live rows that names them by id says so with `live(alias)`:
 * Postgres then plans it for tasks_live alone, instead of also searching tasks_done, whose primary key holds every
 * finished task the table keeps. The condition names the partition, not a status, so it implies neither partial
 * index's predicate (status = 'PENDING', status = 'PROGRESS') and cannot lead the planner to walk one of those
 * instead of the primary key (see lease.ts).
 */
export const live = (alias: string): string => `${alias}.status IN ('PENDING', 'PROGRESS')`;

/** The same for finished rows: tasks_done alone. */
export const finished = (alias: string): string => `${alias}.status IN ('COMPLETED', 'FAILED', 'CANCELLED')`;

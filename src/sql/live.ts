import { FINAL_STATUSES, TASK_STATUSES, type TaskStatus } from "../task.js";

/*
 * `live(alias)` prunes a statement to tasks_live, `finished(alias)` to tasks_done (migration 0003), so a lookup by
 * id searches one partition's primary key. The condition names the partition's statuses, matching neither partial
 * index's predicate, so it cannot lead the planner onto one of those indexes. See docs/architecture.md, Two
 * partitions.
 */
const statusIn = (alias: string, statuses: readonly TaskStatus[]): string =>
  `${alias}.status IN (${statuses.map((s) => `'${s}'`).join(", ")})`;

const LIVE = TASK_STATUSES.filter((s) => !FINAL_STATUSES.has(s));
const FINISHED = [...FINAL_STATUSES];

export const live = (alias: string): string => statusIn(alias, LIVE);

/** The same for finished rows: tasks_done alone. */
export const finished = (alias: string): string => statusIn(alias, FINISHED);

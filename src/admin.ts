import { validateInteger, validateQueueName, validateTaskName } from "./config.js";
import { InvalidOptionError } from "./errors.js";
import { toJsonText } from "./json.js";
import { assertKnownKeys } from "./options.js";
import type { Queryable } from "./db/statements.js";
import {
  countFinishedTasks,
  countLiveTasks,
  countUnsuccessfulTasks,
  finishedStatisticsOf,
  type CountRow,
  type FinishedStatistics,
} from "./sql/admin-count.js";
import { idCeiling, listTaskRows, type ListFilter } from "./sql/admin-list.js";
import {
  FINAL_STATUSES,
  rowToTask,
  TASK_STATUSES,
  validateTaskId,
  type JsonValue,
  type Task,
  type TaskStatus,
} from "./task.js";

// What the task-management calls take and give (client.ts: listTasks, countTasks), and the checks of what they take.

export interface ListTasksOptions {
  /** Only tasks in this status, or in any of these. */
  status?: TaskStatus | readonly TaskStatus[];
  queue?: string;
  name?: string;
  /** Only tasks whose meta contains this object (jsonb containment: `{ tenant: "acme" }` matches that key's value). */
  meta?: { [key: string]: JsonValue };
  /** Tasks per page, 1 to 1,000; default 50. */
  limit?: number;
  /** The `next` of the previous page: this page starts after (older than) that task. */
  after?: string;
}

const LIST_OPTION_KEYS = [
  "status",
  "queue",
  "name",
  "meta",
  "limit",
  "after",
] as const satisfies readonly (keyof ListTasksOptions)[];

export interface TaskPage {
  /** Newest first (by id). */
  tasks: Task[];
  /** Pass as `after` for the next page; null when this page is the last. */
  next: string | null;
}

export const DEFAULT_PAGE_SIZE = 50;

/**
 * Most ids one page of a filtered list reads back through finished tasks: a queue, name or meta filter that few
 * COMPLETED rows match would otherwise read the whole history for one page (0.3–0.6 s on a million rows). Past the
 * window the page ends, short or empty, with a `next` to go on from.
 */
export const LIST_SCAN_IDS = 50_000;

/** Whether a list reads finished rows by a filter checked on the rows read (see LIST_SCAN_IDS). */
function isScanBounded(f: ListFilter): boolean {
  const filtered = f.queue !== null || f.name !== null || f.metaJson !== null;
  return filtered && (f.statuses.length === 0 || f.statuses.includes("COMPLETED"));
}

/**
 * One page of tasks matching `filter` (`limit` is `pageSize` + 1), newest first, with the `after` of the next page.
 * A filtered list over finished tasks reads at most LIST_SCAN_IDS ids back, so its page may be short, or empty,
 * with a `next` all the same.
 */
export async function readTaskPage(
  q: Queryable,
  tasks: string,
  filter: ListFilter,
  pageSize: number,
): Promise<TaskPage> {
  const f = { ...filter };
  if (isScanBounded(f)) {
    const top = f.after ?? (await idCeiling(q, tasks));
    if (top === null) return { tasks: [], next: null };
    const floor = BigInt(top) - BigInt(LIST_SCAN_IDS);
    if (floor > 1n) f.fromId = String(floor);
  }
  const rows = await listTaskRows(q, tasks, f);
  const page = rows.slice(0, pageSize).map((r) => rowToTask(r));
  if (rows.length > pageSize) return { tasks: page, next: page[pageSize - 1]!.id };
  return { tasks: page, next: f.fromId ?? null };
}
const MAX_PAGE_SIZE = 1000;

/** Checks listTasks' options; the filter reads one row more than the page, to know whether another follows. */
export function listFilter(options: ListTasksOptions): ListFilter & { pageSize: number } {
  assertKnownKeys("listTasks", options, LIST_OPTION_KEYS);
  const given =
    options.status === undefined ? [] : typeof options.status === "string" ? [options.status] : options.status;
  if (!Array.isArray(given) || given.some((s) => !TASK_STATUSES.includes(s))) {
    throw new InvalidOptionError(
      "status",
      `expected one or more of ${TASK_STATUSES.join(", ")}, got ${JSON.stringify(options.status)}`,
    );
  }
  let metaJson: string | null = null;
  if (options.meta !== undefined) {
    if (options.meta === null || typeof options.meta !== "object" || Array.isArray(options.meta)) {
      throw new InvalidOptionError("meta", "expected an object of top-level meta keys and the values they must have");
    }
    metaJson = toJsonText(options.meta, "meta");
  }
  const pageSize = validateInteger("limit", options.limit ?? DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE);
  return {
    statuses: [...new Set(given)],
    queue: options.queue === undefined ? null : validateQueueName(options.queue),
    name: options.name === undefined ? null : validateTaskName(options.name),
    metaJson,
    after: options.after === undefined ? null : validateTaskId(options.after),
    limit: pageSize + 1,
    pageSize,
  };
}

export interface CountTasksOptions {
  /**
   * Count finished tasks exactly while there are at most this many (default 50,000); beyond, COMPLETED counts are
   * estimates from the planner's statistics (FAILED and CANCELLED are still counted while they are this few).
   */
  exactLimit?: number;
}

const COUNT_OPTION_KEYS = ["exactLimit"] as const satisfies readonly (keyof CountTasksOptions)[];

export const DEFAULT_EXACT_LIMIT = 50_000;

export function exactLimitOf(options: CountTasksOptions): number {
  assertKnownKeys("countTasks", options, COUNT_OPTION_KEYS);
  return validateInteger("exactLimit", options.exactLimit ?? DEFAULT_EXACT_LIMIT, 0, Number.MAX_SAFE_INTEGER - 1);
}

/**
 * Counts per queue and status, cheap whatever the table's size (see sql/admin-count.ts): finished tasks exactly while
 * there are at most `cap`, beyond that estimated from the planner's statistics.
 */
export async function countTasksIn(q: Queryable, tasks: string, schema: string, cap: number): Promise<TaskCounts> {
  const [live, stats] = await Promise.all([countLiveTasks(q, tasks), finishedStatisticsOf(q, tasks, schema)]);
  // Statistics that put the finished rows well past the cap spare reading `cap` rows only to learn that.
  if (!stats || stats.rows <= cap * 1.5) {
    const done = await countFinishedTasks(q, tasks, cap);
    if (done) return taskCounts([...live, ...done], null, []);
    // Many rows and no statistics yet (never analyzed): count them all this once rather than guess.
    if (!stats) return taskCounts([...live, ...(await countFinishedTasks(q, tasks, null))!], null, []);
  }
  const unsuccessful = await countUnsuccessfulTasks(q, tasks, cap);
  if (unsuccessful) return taskCounts([...live, ...unsuccessful], stats, ["COMPLETED"]);
  return taskCounts(live, stats, ["COMPLETED", "FAILED", "CANCELLED"]);
}

export type StatusCounts = Record<TaskStatus, number>;

export interface TaskCounts {
  /** Per queue that has tasks, a number for every status (0 when none). */
  queues: { [queue: string]: StatusCounts };
  /** Every queue's numbers added up. */
  totals: StatusCounts;
  /** True when every number is an exact count. */
  exact: boolean;
  /** The statuses whose numbers are estimates (empty when `exact`): COMPLETED, and on a bad day FAILED, CANCELLED. */
  estimated: TaskStatus[];
}

const zero = (): StatusCounts => ({ PENDING: 0, PROGRESS: 0, COMPLETED: 0, FAILED: 0, CANCELLED: 0 });

/**
 * Puts the counts together: exact rows as they are; for finished statuses without exact rows, each queue's share of
 * the partition's estimated rows (queue and status taken as independent), less what was counted exactly.
 */
export function taskCounts(
  exactRows: readonly CountRow[],
  stats: FinishedStatistics | null,
  estimated: readonly TaskStatus[],
): TaskCounts {
  const queues: { [queue: string]: StatusCounts } = {};
  const totals = zero();
  const add = (queue: string, status: TaskStatus, n: number) => {
    (queues[queue] ??= zero())[status] += n;
    totals[status] += n;
  };
  for (const r of exactRows) add(r.queue, r.status, r.n);
  if (stats && estimated.length > 0) {
    // A queue's finished rows counted exactly are taken out of its estimated rows, so its numbers never add up to
    // more than its share; the rest is split among the estimated statuses by their shares.
    const share = estimated.reduce((sum, s) => sum + (stats.statuses.get(s) ?? 0), 0);
    for (const [queue, qShare] of stats.queues) {
      const known = exactRows.reduce(
        (sum, r) => (r.queue === queue && FINAL_STATUSES.has(r.status) ? sum + r.n : sum),
        0,
      );
      const rest = Math.max(0, stats.rows * qShare - known);
      for (const status of estimated) {
        const part = share > 0 ? (stats.statuses.get(status) ?? 0) / share : 0;
        const n = Math.round(rest * part);
        if (n > 0) add(queue, status, n);
      }
    }
  }
  return { queues, totals, exact: estimated.length === 0, estimated: [...estimated] };
}

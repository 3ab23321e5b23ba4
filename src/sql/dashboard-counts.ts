import { perTable, run, type Queryable } from "../db/statements.js";

/*
 * The dashboard's two counts that countTasks does not give: running tasks with an old heartbeat ("stale"), and
 * PENDING tasks already due (the rest of PENDING is "scheduled"). Both read only tasks_live: `status = 'PROGRESS'`
 * matches tasks_running_idx (heartbeat_at), whose entries older than the threshold are one range of it;
 * `status = 'PENDING'` matches tasks_claim_idx. Each count stops at $2 rows, so a backlog of millions costs what
 * $2 rows do; the page shows "10,000+" then.
 */
const liveSplitStatement = perTable(
  "dashboard_live_split",
  (tasks) => `SELECT
     (SELECT count(*) FROM (SELECT 1 FROM ${tasks} t
        WHERE t.status = 'PROGRESS' AND t.heartbeat_at < now() - $1::float8 * interval '1 second' LIMIT $2) s)::int
       AS stale,
     (SELECT count(*) FROM (SELECT 1 FROM ${tasks} t WHERE t.status = 'PENDING' AND t.run_at <= now() LIMIT $2) d)::int
       AS due`,
);

export interface LiveSplit {
  /** Running tasks whose heartbeat is older than the threshold (at most the cap). */
  stale: number;
  /** PENDING tasks whose run_at has passed (at most the cap). */
  due: number;
}

/** Counts of stale running tasks and due PENDING tasks, each read up to `cap` rows. */
export async function countLiveSplit(
  q: Queryable,
  tasks: string,
  staleAfterSeconds: number,
  cap: number,
): Promise<LiveSplit> {
  const { rows } = await run<LiveSplit>(q, liveSplitStatement(tasks), [staleAfterSeconds, cap]);
  return rows[0] ?? { stale: 0, due: 0 };
}

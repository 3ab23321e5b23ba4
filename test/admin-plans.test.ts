// The task-management statements on a table with many finished rows: each reads what its answer needs, not the
// history kept. Checked on the plans Postgres actually runs (EXPLAIN ANALYZE inside a rolled-back transaction),
// without statistics and with fresh ones, as test/plans.test.ts does for the hot statements.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Queryable } from "../src/db/statements.js";
import { countFinishedTasks, countUnsuccessfulTasks } from "../src/sql/admin-count.js";
import { deleteFinishedTask } from "../src/sql/admin-delete.js";
import { listTaskRows, type ListFilter } from "../src/sql/admin-list.js";
import { retryFinishedTask } from "../src/sql/admin-retry.js";
import { runPendingTaskNow } from "../src/sql/admin-run-now.js";
import { readTaskState } from "../src/sql/admin-state.js";
import { freshSchema, type SchemaEnv } from "./helpers.js";

const COMPLETED = 200_000;
const FAILED = 300;
const PENDING = 2_000;
const PAGE = 51;

let env: SchemaEnv;
let tasks: string;
let failedId: string;
let pendingId: string;

interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  "Relation Name"?: string;
  "Actual Rows": number;
  "Actual Loops": number;
  "Rows Removed by Filter"?: number;
  Plans?: PlanNode[];
}

const nodes = (plan: PlanNode): PlanNode[] => [plan, ...(plan.Plans ?? []).flatMap(nodes)];

/** Records the statement a function sends instead of running it. */
function recorder(): Queryable & { last: { text: string; values: unknown[] } | null } {
  const r = {
    last: null as { text: string; values: unknown[] } | null,
    async query<R extends pg.QueryResultRow>(cfg: pg.QueryConfig): Promise<pg.QueryResult<R>> {
      r.last = { text: cfg.text, values: cfg.values ?? [] };
      return { rows: [], rowCount: 0, command: "", oid: 0, fields: [] };
    },
  };
  return r;
}

/** The plan of what `call` sends, run under EXPLAIN ANALYZE and rolled back. */
async function planOf(call: (q: Queryable) => Promise<unknown>): Promise<PlanNode[]> {
  const rec = recorder();
  await call(rec);
  const client = await env.pool.connect();
  try {
    await client.query("BEGIN");
    const { rows } = await client.query({
      text: `EXPLAIN (ANALYZE, FORMAT JSON) ${rec.last!.text}`,
      values: rec.last!.values,
    });
    return nodes((rows[0]["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan);
  } finally {
    await client.query("ROLLBACK");
    client.release();
  }
}

/** Each partition read, as "partition: index" (a bitmap scan by the indexes under it, other scans by type), sorted. */
function scans(plan: PlanNode[]): string[] {
  const how = (p: PlanNode): string =>
    p["Node Type"] === "Bitmap Heap Scan"
      ? nodes(p)
          .filter((c) => c["Index Name"])
          .map((c) => c["Index Name"])
          .join("+")
      : (p["Index Name"] ?? p["Node Type"]);
  const read = plan.filter((p) => p["Relation Name"]?.startsWith("tasks") && p["Node Type"] !== "ModifyTable");
  return [...new Set(read.map((p) => `${p["Relation Name"]}: ${how(p)}`))].sort();
}

/** Rows the scans of tasks_done produced or threw away: what reading it cost. */
function finishedRowsRead(plan: PlanNode[]): number {
  return plan
    .filter((p) => p["Relation Name"] === "tasks_done")
    .reduce((n, p) => n + (p["Actual Rows"] + (p["Rows Removed by Filter"] ?? 0)) * p["Actual Loops"], 0);
}

const filter = (f: Partial<ListFilter>): ListFilter => ({
  statuses: [],
  queue: null,
  name: null,
  metaJson: null,
  after: null,
  limit: PAGE,
  ...f,
});

beforeAll(async () => {
  env = await freshSchema("admin_plans");
  tasks = `"${env.schema}".tasks`;
  for (const partition of ["tasks_live", "tasks_done"]) {
    await env.pool.query(`ALTER TABLE "${env.schema}".${partition} SET (autovacuum_enabled = false)`);
  }
  // Failures spread through the history, the newest far behind the newest completions.
  await env.pool.query(
    `INSERT INTO ${tasks} (name, queue, status, finished_at, attempt)
     SELECT 'noop', CASE WHEN g % 2 = 0 THEN 'mail' ELSE 'default' END,
            CASE WHEN g % ($1::int / $2::int) = 0 AND g < $1::int / 2 THEN 'FAILED' ELSE 'COMPLETED' END, now(), 1
       FROM generate_series(1, $1::int) AS g`,
    [COMPLETED, FAILED * 2],
  );
  await env.pool.query(`INSERT INTO ${tasks} (name) SELECT 'noop' FROM generate_series(1, $1::int)`, [PENDING]);
  failedId = (await env.pool.query(`SELECT max(id)::text AS id FROM ${tasks} WHERE status = 'FAILED'`)).rows[0].id;
  pendingId = (await env.pool.query(`SELECT max(id)::text AS id FROM ${tasks} WHERE status = 'PENDING'`)).rows[0].id;
}, 60_000);

afterAll(async () => {
  await env?.drop();
});

const STATISTICS: [string, () => Promise<void>][] = [
  ["no statistics yet", async () => {}],
  ["after ANALYZE", async () => void (await env.pool.query(`ANALYZE ${tasks}`))],
];

for (const [statistics, prepare] of STATISTICS)
  describe(`task management reads only what it answers with (${statistics})`, () => {
    beforeAll(prepare);

    it("listTasks, newest first: both primary keys backwards, a page's worth of rows", async () => {
      const plan = await planOf((q) => listTaskRows(q, tasks, filter({})));
      expect(scans(plan)).toEqual(["tasks_done: tasks_done_pkey", "tasks_live: tasks_live_pkey"]);
      expect(finishedRowsRead(plan)).toBeLessThanOrEqual(PAGE);
    });

    it("listTasks of FAILED tasks: the partial index, never the completed rows", async () => {
      const plan = await planOf((q) => listTaskRows(q, tasks, filter({ statuses: ["FAILED"] })));
      expect(scans(plan)).toEqual(["tasks_done: tasks_done_unsuccessful_idx"]);
      expect(finishedRowsRead(plan)).toBeLessThanOrEqual(PAGE);
      // A later page too.
      const later = await planOf((q) => listTaskRows(q, tasks, filter({ statuses: ["FAILED"], after: failedId })));
      expect(finishedRowsRead(later)).toBeLessThanOrEqual(PAGE);
    });

    it("listTasks of several statuses: each through its own partition and index, merged", async () => {
      const plan = await planOf((q) =>
        listTaskRows(q, tasks, filter({ statuses: ["FAILED", "CANCELLED", "PENDING"], queue: "mail" })),
      );
      expect(scans(plan).filter((s) => s.startsWith("tasks_done"))).toEqual([
        "tasks_done: tasks_done_unsuccessful_idx",
      ]);
      // Half the failures are in "mail": about two pages of them, newest first. Before any statistics the planner
      // may read every failure and sort them instead, still none of the completed rows.
      expect(finishedRowsRead(plan)).toBeLessThanOrEqual(statistics === "after ANALYZE" ? 2 * PAGE + 2 : FAILED);
    });

    it("countTasks: finished rows counted up to the cap, failures from the partial index alone", async () => {
      const capped = await planOf((q) => countFinishedTasks(q, tasks, 1000));
      expect(finishedRowsRead(capped)).toBeLessThanOrEqual(1001);
      const unsuccessful = await planOf((q) => countUnsuccessfulTasks(q, tasks, 100_000));
      expect(scans(unsuccessful)).toEqual(["tasks_done: tasks_done_unsuccessful_idx"]);
      expect(finishedRowsRead(unsuccessful)).toBe(FAILED);
    });

    it("retryTask, runTaskNow, deleteTask and the state read: one row each, by key", async () => {
      for (const call of [
        (q: Queryable) => retryFinishedTask(q, tasks, failedId),
        (q: Queryable) => deleteFinishedTask(q, tasks, failedId),
        (q: Queryable) => runPendingTaskNow(q, tasks, pendingId),
        (q: Queryable) => readTaskState(q, tasks, failedId),
      ]) {
        const plan = await planOf(call);
        expect(scans(plan).every((s) => /_pkey$|tasks_done_unsuccessful_idx$|tasks_unique_key_idx$/.test(s))).toBe(
          true,
        );
        expect(finishedRowsRead(plan)).toBeLessThanOrEqual(1);
      }
    });
  });

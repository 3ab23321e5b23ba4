// The statements only the dashboard's pages run, on a table with many finished rows: the stale and due counts and
// the "stale", "due now" and "scheduled" lists read tasks_live alone, never the finished history; a list page and the
// overview render from it. Checked on the plans Postgres runs (EXPLAIN ANALYZE in a rolled-back transaction).
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Queryable } from "../src/db/statements.js";
import { listTaskRows, type ListFilter } from "../src/sql/admin-list.js";
import { countLiveSplit } from "../src/sql/dashboard-counts.js";
import { freshSchema, type SchemaEnv } from "./helpers.js";

const COMPLETED = 200_000;
const PAGE = 51;

let env: SchemaEnv;
let tasks: string;

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Actual Rows": number;
  "Actual Loops": number;
  Plans?: PlanNode[];
}
const nodes = (plan: PlanNode): PlanNode[] => [plan, ...(plan.Plans ?? []).flatMap(nodes)];

/** The plan of the statement `call` sends, run under EXPLAIN ANALYZE and rolled back. */
async function planOf(call: (q: Queryable) => Promise<unknown>): Promise<PlanNode[]> {
  let sent: { text: string; values: unknown[] } | null = null;
  await call({
    async query<R extends pg.QueryResultRow>(cfg: pg.QueryConfig): Promise<pg.QueryResult<R>> {
      sent = { text: cfg.text, values: cfg.values ?? [] };
      return { rows: [], rowCount: 0, command: "", oid: 0, fields: [] };
    },
  }).catch(() => {});
  const client = await env.pool.connect();
  try {
    await client.query("BEGIN");
    const { rows } = await client.query({ text: `EXPLAIN (ANALYZE, FORMAT JSON) ${sent!.text}`, values: sent!.values });
    return nodes((rows[0]["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan);
  } finally {
    await client.query("ROLLBACK");
    client.release();
  }
}

const relations = (plan: PlanNode[]) => [...new Set(plan.flatMap((p) => p["Relation Name"] ?? []))].sort();

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
  env = await freshSchema("dashboard_pages_plans");
  tasks = `"${env.schema}".tasks`;
  await env.pool.query(
    `INSERT INTO ${tasks} (name, queue, status, started_at, finished_at, attempt)
     SELECT 'noop', 'q' || (g % 4), 'COMPLETED', now(), now() - g * interval '10 ms', 1 FROM generate_series(1, $1::int) g`,
    [COMPLETED],
  );
  await env.pool.query(
    `INSERT INTO ${tasks} (name, queue, run_at) SELECT 'noop', 'q' || (g % 4), now() + (g % 2) * interval '1 hour'
       FROM generate_series(1, 400) g`,
  );
  await env.pool.query(
    `INSERT INTO ${tasks} (name, status, attempt, worker_id, started_at, heartbeat_at)
     SELECT 'noop', 'PROGRESS', 1, 'w', now(), now() - (g % 2) * interval '5 minutes' FROM generate_series(1, 40) g`,
  );
  await env.pool.query(`ANALYZE ${tasks}`);
}, 60_000);

afterAll(async () => {
  await env?.drop();
});

describe("the pages' own statements read tasks_live only", () => {
  it("counts stale running tasks and due pending ones, each up to its cap", async () => {
    expect(await countLiveSplit(env.pool, tasks, 30, 10_000)).toEqual({ stale: 20, due: 200 });
    expect(await countLiveSplit(env.pool, tasks, 30, 5)).toEqual({ stale: 5, due: 5 });
    expect(relations(await planOf((q) => countLiveSplit(q, tasks, 30, 10_000)))).toEqual(["tasks_live"]);
  });

  it("lists due, scheduled and stale tasks, newest first", async () => {
    const cases: [Partial<ListFilter>, number][] = [
      [{ statuses: ["PENDING"], runAt: "due" }, 200],
      [{ statuses: ["PENDING"], runAt: "future" }, 200],
      [{ statuses: ["PROGRESS"], heartbeatOlderThan: 30 }, 20],
    ];
    for (const [f, matching] of cases) {
      const rows = await listTaskRows(env.pool, tasks, filter({ ...f, limit: 1000 }));
      expect(rows.length, JSON.stringify(f)).toBe(matching);
      const ids = rows.map((r) => Number(r.id));
      expect(ids).toEqual([...ids].sort((a, b) => b - a));
      expect(relations(await planOf((q) => listTaskRows(q, tasks, filter(f))))).toEqual(["tasks_live"]);
    }
    const due = await listTaskRows(env.pool, tasks, filter({ statuses: ["PENDING"], runAt: "due", limit: 1000 }));
    expect(due.every((r) => r.run_at.getTime() <= Date.now())).toBe(true);
  });
});

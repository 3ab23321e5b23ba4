// The metrics scrape's oldest-due statement on a deep queue: it skips through the claim index, reading a few rows per
// queue and priority, never every pending row. Checked on the plan Postgres runs, without statistics and with them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { oldestDueAges } from "../src/sql/oldest-due.js";
import { freshSchema, type SchemaEnv } from "./helpers.js";

const PENDING = 200_000;

let env: SchemaEnv;
let tasks: string;

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

beforeAll(async () => {
  env = await freshSchema("oldest_due");
  tasks = `"${env.schema}".tasks`;
  await env.pool.query(`ALTER TABLE "${env.schema}".tasks_live SET (autovacuum_enabled = false)`);
  // Two deep queues over three priorities, due 1 to 3 hours ago and due later; a third queue with nothing due yet.
  await env.pool.query(
    `INSERT INTO ${tasks} (name, queue, priority, run_at)
     SELECT 'noop', CASE WHEN g % 2 = 0 THEN 'mail' ELSE 'default' END, (g % 3) - 1,
            now() - make_interval(secs => 3600 + (g % 7200)) + CASE WHEN g % 5 = 0 THEN interval '1 day' ELSE '0' END
       FROM generate_series(1, $1::int) AS g`,
    [PENDING],
  );
  await env.pool.query(
    `INSERT INTO ${tasks} (name, queue, run_at) VALUES ('noop', 'later', now() + interval '1 hour')`,
  );
}, 60_000);

afterAll(async () => {
  await env?.drop();
});

const STATISTICS: [string, () => Promise<void>][] = [
  ["no statistics yet", async () => {}],
  ["after ANALYZE", async () => void (await env.pool.query(`ANALYZE ${tasks}`))],
];

for (const [statistics, prepare] of STATISTICS)
  describe(`oldest due task per queue (${statistics})`, () => {
    beforeAll(prepare);

    it("answers each queue's oldest due age", async () => {
      const ages = new Map((await oldestDueAges(env.pool, tasks)).map((r) => [r.queue, r.age]));
      const { rows } = await env.pool.query(
        `SELECT queue, extract(epoch FROM now() - min(run_at))::float8 AS age
           FROM ${tasks} WHERE status = 'PENDING' AND run_at <= now() GROUP BY queue`,
      );
      expect([...ages.keys()].sort()).toEqual(["default", "later", "mail"]);
      expect(ages.get("later")).toBe(0);
      for (const r of rows as { queue: string; age: number }[]) expect(ages.get(r.queue)).toBeCloseTo(r.age, 0);
    });

    it("reads the claim index a few rows per queue and priority, never the whole queue", async () => {
      const client = await env.pool.connect();
      try {
        const { rows } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${textOf()}`);
        const plan = nodes((rows[0]["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan);
        const reads = plan.filter((p) => p["Relation Name"]?.startsWith("tasks"));
        expect(reads.length).toBeGreaterThan(0);
        for (const p of reads) {
          expect(p["Node Type"]).toMatch(/^Index (Only )?Scan$/);
          expect(p["Index Name"]).toBe("tasks_claim_idx");
        }
        const rowsRead = reads.reduce(
          (n, p) => n + (p["Actual Rows"] + (p["Rows Removed by Filter"] ?? 0)) * p["Actual Loops"],
          0,
        );
        expect(rowsRead).toBeLessThan(100);
      } finally {
        client.release();
      }
    });
  });

/** The statement's text, as oldestDueAges sends it. */
function textOf(): string {
  let text = "";
  void oldestDueAges(
    {
      query: async (cfg) => {
        text = cfg.text;
        return { rows: [], rowCount: 0, command: "", oid: 0, fields: [] };
      },
    },
    tasks,
  );
  return text;
}

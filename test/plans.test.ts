// The statements that name a batch of tasks by id must reach them through the live partition's primary key, whatever
// else is in the table: a plan that scans or re-reads every running task turns a batch into work proportional to the
// whole cluster, and one that also searches the finished rows' partition pays for all the history kept. Checked on
// the plans Postgres actually runs (EXPLAIN ANALYZE inside a rolled-back transaction), with many tasks running for
// another worker, with and without statistics.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Queryable, Statement } from "../src/db/statements.js";
import { cancelTasks, requestCancel } from "../src/sql/cancel.js";
import { claimTasks } from "../src/sql/claim.js";
import { completeTasks, failTasks } from "../src/sql/finish.js";
import { heartbeatStatement } from "../src/sql/heartbeat.js";
import { writeReports } from "../src/sql/progress.js";
import { releaseTasks } from "../src/sql/release.js";
import { recordStarts } from "../src/sql/start.js";
import { freshSchema, type SchemaEnv } from "./helpers.js";

const OTHERS = 20_000;
const MINE = 1_000;

let env: SchemaEnv;
let tasks: string;
let mine: { id: string; attempt: number }[];

/** A stand-in for a pool that records the statement it is given instead of running it. */
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

interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  "Relation Name"?: string;
  "Actual Rows": number;
  "Actual Loops": number;
  "Rows Removed by Join Filter"?: number;
  "Rows Removed by Filter"?: number;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

/**
 * Runs the statement under EXPLAIN ANALYZE, after `setup` if given, and rolls both back; returns every node of the
 * plan.
 */
async function explain(stmt: { text: string; values: unknown[] }, setup?: string): Promise<PlanNode[]> {
  const client: pg.PoolClient = await env.pool.connect();
  try {
    await client.query("BEGIN");
    if (setup) await client.query(setup);
    const { rows } = await client.query({ text: `EXPLAIN (ANALYZE, FORMAT JSON) ${stmt.text}`, values: stmt.values });
    return nodes((rows[0]["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan);
  } finally {
    await client.query("ROLLBACK");
    client.release();
  }
}

/**
 * How the plan reads the tasks table's partitions, sorted: each scan as "partition: index", a bitmap scan by the
 * indexes under it, any other scan by its type ("tasks_live: Seq Scan").
 */
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

/** Reads tasks only through the live partition's primary key, never the finished rows' partition. */
const BY_LIVE_PRIMARY_KEY = ["tasks_live: tasks_live_pkey"];

/** Rows the plan read from the tasks table and threw away, by filters and join filters. */
function rowsDiscarded(plan: PlanNode[]): number {
  return plan.reduce(
    (n, p) => n + ((p["Rows Removed by Join Filter"] ?? 0) + (p["Rows Removed by Filter"] ?? 0)) * p["Actual Loops"],
    0,
  );
}

beforeAll(async () => {
  env = await freshSchema("plans");
  tasks = `"${env.schema}".tasks`;
  for (const partition of ["tasks_live", "tasks_done"]) {
    await env.pool.query(`ALTER TABLE "${env.schema}".${partition} SET (autovacuum_enabled = false)`);
  }
  await env.pool.query(
    `INSERT INTO ${tasks} (name, status, worker_id, attempt, started_at, heartbeat_at)
     SELECT 'noop', 'PROGRESS', CASE WHEN g <= $1::int THEN 'other' ELSE 'me' END, 1, now(), now()
       FROM generate_series(1, $1::int + $2::int) AS g`,
    [OTHERS, MINE],
  );
  const { rows } = await env.pool.query(`SELECT id::text AS id, attempt FROM ${tasks} WHERE worker_id = 'me'`);
  mine = rows;
});

afterAll(async () => {
  await env?.drop();
});

/**
 * The statistics each block plans with: none yet (a new table, or one autovacuum has not analyzed: the planner
 * guesses), fresh ones, and ones taken while nothing was running (a VACUUM between two bursts), which tell the
 * planner the running-task index is empty when it holds every running task.
 */
const STATISTICS: [string, () => Promise<void>][] = [
  ["no statistics yet", async () => {}],
  ["after ANALYZE", async () => void (await env.pool.query(`ANALYZE ${tasks}`))],
  [
    "statistics taken while nothing ran",
    async () => {
      await env.pool.query(`UPDATE ${tasks} SET status = 'COMPLETED'`);
      await env.pool.query(`VACUUM ANALYZE ${tasks}`);
      await env.pool.query(`UPDATE ${tasks} SET status = 'PROGRESS'`);
    },
  ],
];

for (const [statistics, prepare] of STATISTICS)
  describe(`batch statements reach their tasks through the primary key (${statistics})`, () => {
    beforeAll(prepare);

    it("heartbeat", async () => {
      const stmt: Statement = heartbeatStatement(tasks);
      const values = ["me", mine.map((m) => m.id).join(","), mine.map((m) => m.attempt).join(","), 60];
      const plan = await explain({ text: stmt.text, values });
      expect(scans(plan)).toEqual(BY_LIVE_PRIMARY_KEY);
      // And it beats exactly this worker's tasks (run in a transaction that is rolled back).
      const client = await env.pool.connect();
      try {
        await client.query("BEGIN");
        const { rows } = await client.query({ text: stmt.text, values });
        expect(rows).toEqual([{ beaten: MINE, cancel: "" }]);
      } finally {
        await client.query("ROLLBACK");
        client.release();
      }
      expect(rowsDiscarded(plan)).toBeLessThan(MINE);
    });

    it("cancelled attempts and progress reports", async () => {
      const rec = recorder();
      await cancelTasks(
        rec,
        tasks,
        "me",
        mine.map((m) => ({ ...m, error: "TaskCancelledError: x", duration: 0.01 })),
      );
      const cancelled = await explain(rec.last!);
      expect(scans(cancelled)).toEqual(BY_LIVE_PRIMARY_KEY);
      expect(rowsDiscarded(cancelled)).toBeLessThan(MINE);
      await writeReports(
        rec,
        tasks,
        "me",
        mine.map((m) => ({ ...m, progressJson: '{"fraction":0.5,"message":null}', metaJson: "null" })),
      );
      const reported = await explain(rec.last!);
      expect(scans(reported)).toEqual(BY_LIVE_PRIMARY_KEY);
      expect(rowsDiscarded(reported)).toBeLessThan(MINE);
    });

    it("claim: picks through the claim index, updates through the primary key", async () => {
      const rec = recorder();
      await claimTasks(rec, tasks, {
        queues: ["default"],
        limit: 32,
        workerId: "me",
        defaultMaxRetries: 0,
      });
      // A backlog the statistics know nothing of, as after a burst of enqueues.
      const plan = await explain(rec.last!, `INSERT INTO ${tasks} (name) SELECT 'noop' FROM generate_series(1, 5000)`);
      expect(scans(plan)).toEqual(["tasks_live: tasks_claim_idx", "tasks_live: tasks_live_pkey"]);
      expect(rowsDiscarded(plan)).toBeLessThan(32);
    });

    it("complete", async () => {
      const rec = recorder();
      await completeTasks(
        rec,
        tasks,
        "me",
        mine.map((m) => ({ ...m, resultJson: "null", duration: 0.01 })),
      );
      const plan = await explain(rec.last!);
      expect(scans(plan)).toEqual(BY_LIVE_PRIMARY_KEY);
      expect(rowsDiscarded(plan)).toBeLessThan(MINE);
    });

    it("complete, for a batch of one: a single-row update by primary key", async () => {
      const rec = recorder();
      // The stand-in answers "no row changed", which is how a stale attempt is reported back.
      expect(await completeTasks(rec, tasks, "me", [{ ...mine[0]!, resultJson: "1", duration: 0.01 }])).toEqual([
        mine[0]!.id,
      ]);
      expect(rec.last!.text).not.toMatch(/unnest|jsonb_array_elements/);
      const plan = await explain(rec.last!);
      expect(scans(plan)).toEqual(BY_LIVE_PRIMARY_KEY);
      expect(rowsDiscarded(plan)).toBe(0);
      // Run for real (rolled back), it completes that one task and nothing else.
      const client = await env.pool.connect();
      try {
        await client.query("BEGIN");
        expect(await completeTasks(client, tasks, "me", [{ ...mine[0]!, resultJson: "1", duration: 0.01 }])).toEqual(
          [],
        );
        const { rows } = await client.query(`SELECT id::text, result FROM ${tasks} WHERE status = 'COMPLETED'`);
        expect(rows).toEqual([{ id: mine[0]!.id, result: 1 }]);
      } finally {
        await client.query("ROLLBACK");
        client.release();
      }
    });

    it("outcomes are written only under the lease: the same attempt held by another worker id is left alone", async () => {
      const client = await env.pool.connect();
      try {
        await client.query("BEGIN");
        const some = mine.slice(0, 3);
        const done = some.map((m) => ({ ...m, resultJson: "1", duration: 0.01 }));
        expect(await completeTasks(client, tasks, "other", done)).toEqual(some.map((m) => m.id));
        expect(await completeTasks(client, tasks, "other", done.slice(0, 1))).toEqual([some[0]!.id]);
        const failed = some.map((m) => ({ ...m, error: "x", duration: 0.01, final: true }));
        expect((await failTasks(client, tasks, "other", failed, { base: 1, max: 2 })).size).toBe(0);
        expect(
          await releaseTasks(
            client,
            tasks,
            "other",
            some.map((m) => ({ ...m, started: true })),
          ),
        ).toEqual([]);
        const { rows } = await client.query(
          `SELECT DISTINCT status, worker_id FROM ${tasks} WHERE id = ANY($1::bigint[])`,
          [some.map((m) => m.id)],
        );
        expect(rows).toEqual([{ status: "PROGRESS", worker_id: "me" }]);
        // The holder of the lease can.
        expect(await completeTasks(client, tasks, "me", done)).toEqual([]);
      } finally {
        await client.query("ROLLBACK");
        client.release();
      }
    });

    it("cancel: one task by its primary key, whatever the backlog", async () => {
      const rec = recorder();
      expect(await requestCancel(rec, tasks, mine[0]!.id)).toBeNull();
      const plan = await explain(rec.last!, `INSERT INTO ${tasks} (name) SELECT 'noop' FROM generate_series(1, 5000)`);
      expect(scans(plan)).toEqual(BY_LIVE_PRIMARY_KEY);
      expect(rowsDiscarded(plan)).toBeLessThanOrEqual(1); // the row it names, which is not PENDING here
    });

    it("fail and release", async () => {
      const rec = recorder();
      await failTasks(
        rec,
        tasks,
        "me",
        mine.map((m) => ({ ...m, error: "x", duration: 0.01, final: false })),
        { base: 1, max: 2 },
      );
      const fail = await explain(rec.last!);
      await releaseTasks(
        rec,
        tasks,
        "me",
        mine.map((m, i) => ({ ...m, started: i % 2 === 0 })),
      );
      const release = await explain(rec.last!);
      await recordStarts(rec, tasks, "me", mine);
      // Prefetched rows, whose start is not recorded yet.
      const start = await explain(rec.last!, `UPDATE ${tasks} SET started_at = NULL WHERE worker_id = 'me'`);
      for (const plan of [fail, release, start]) {
        expect(scans(plan)).toEqual(BY_LIVE_PRIMARY_KEY);
        expect(rowsDiscarded(plan)).toBeLessThan(MINE);
      }
    });
  });

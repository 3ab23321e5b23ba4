// The unique-key statements that read live rows by key must find them through the unique index, whatever the
// statistics say: a plan through the running-task index reads every running task of the cluster for one enqueue.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueKeyStatements } from "../src/sql/insert-unique.js";
import { freshSchema, type SchemaEnv } from "./helpers.js";

let env: SchemaEnv;
let tasks: string;

beforeAll(async () => {
  env = await freshSchema("plans_unique");
  tasks = `"${env.schema}".tasks`;
});

afterAll(() => env.drop());

interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  Plans?: PlanNode[];
}
const nodes = (p: PlanNode): PlanNode[] => [p, ...(p.Plans ?? []).flatMap(nodes)];

async function indexesUsed(text: string, values: unknown[]): Promise<string[]> {
  const client = await env.pool.connect();
  try {
    await client.query("BEGIN");
    const { rows } = await client.query({ text: `EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, values });
    return nodes(rows[0]["QUERY PLAN"][0].Plan as PlanNode).flatMap((n) => (n["Index Name"] ? [n["Index Name"]] : []));
  } finally {
    await client.query("ROLLBACK");
    client.release();
  }
}

describe("unique-key statements", () => {
  for (const stats of ["no statistics", "statistics taken while nothing ran"]) {
    it(`reach holders through the unique index with ${stats}`, async () => {
      await env.pool.query(`TRUNCATE ${tasks}`);
      await env.pool.query(
        `INSERT INTO ${tasks} (name, unique_key) SELECT 'x', 'k' || g FROM generate_series(1, 20000) g`,
      );
      if (stats !== "no statistics") await env.pool.query(`ANALYZE ${tasks}_live`);
      // Now they all run: statistics taken before say nothing does.
      await env.pool.query(`UPDATE ${tasks} SET status = 'PROGRESS', worker_id = 'w', attempt = 1`);
      const keys = [["k5", "k7"]];
      for (const stmt of [uniqueKeyStatements.supersede(tasks), uniqueKeyStatements.holdersOf(tasks)]) {
        const used = await indexesUsed(stmt.text, keys);
        expect(used).not.toContain("tasks_running_idx");
        expect(used).toContain("tasks_unique_key_idx");
      }
    });
  }
});

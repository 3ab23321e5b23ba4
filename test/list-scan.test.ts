// A list filtered by queue, name or meta over many COMPLETED rows reads at most LIST_SCAN_IDS ids back per page: its
// page may be short or empty, with a `next` all the same, and following `next` finds every match once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LIST_SCAN_IDS } from "../src/admin.js";
import { SkiplockClient } from "../src/index.js";
import { DATABASE_URL, freshSchema, quiet, type SchemaEnv } from "./helpers.js";

const ROWS = LIST_SCAN_IDS * 2 + 20_000;
/** Every this many rows is a "rare" one: 7 in all, spread over three windows. */
const RARE_EVERY = 20_000;

let env: SchemaEnv;
let client: SkiplockClient;

beforeAll(async () => {
  env = await freshSchema("list_scan");
  const tasks = `"${env.schema}".tasks`;
  await env.pool.query(
    `INSERT INTO ${tasks} (name, queue, status, started_at, finished_at, attempt)
     SELECT CASE WHEN g % $2::int = 0 THEN 'rare' ELSE 'common' END, 'q', 'COMPLETED', now(), now(), 1
       FROM generate_series(1, $1::int) g`,
    [ROWS, RARE_EVERY],
  );
  await env.pool.query(`ANALYZE ${tasks}`);
  client = new SkiplockClient({ databaseUrl: DATABASE_URL, schema: env.schema, logger: quiet });
}, 120_000);

afterAll(async () => {
  await client?.close();
  await env?.drop();
});

describe("a filtered list over many finished tasks", () => {
  it("reads a window of ids per page and finds every match by following next", async () => {
    const seen: string[] = [];
    let pages = 0;
    let page = await client.listTasks({ status: "COMPLETED", name: "rare", limit: 5 });
    for (;;) {
      pages++;
      expect(page.tasks.length).toBeLessThanOrEqual(5);
      seen.push(...page.tasks.map((t) => t.id));
      if (page.next === null) break;
      page = await client.listTasks({ status: "COMPLETED", name: "rare", limit: 5, after: page.next });
    }
    expect(seen.length).toBe(Math.floor(ROWS / RARE_EVERY));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.map(BigInt)).toEqual([...seen.map(BigInt)].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)));
    // Each page read at most one window: three windows cover the table, so at least three pages.
    expect(pages).toBeGreaterThanOrEqual(3);
  });

  it("ends a window with a short page and a next to go on from", async () => {
    const first = await client.listTasks({ status: "COMPLETED", name: "rare", limit: 100 });
    expect(first.tasks.length).toBeLessThan(100);
    expect(first.next).not.toBeNull();
    const none = await client.listTasks({ name: "absent", limit: 10 });
    expect(none.tasks).toEqual([]);
    expect(none.next).not.toBeNull();
  });

  it("leaves unfiltered lists and full pages as they were: next is the last task's id", async () => {
    const page = await client.listTasks({ status: "COMPLETED", limit: 10 });
    expect(page.tasks).toHaveLength(10);
    expect(page.next).toBe(page.tasks[9]!.id);
    const common = await client.listTasks({ status: "COMPLETED", name: "common", limit: 10 });
    expect(common.tasks).toHaveLength(10);
    expect(common.next).toBe(common.tasks[9]!.id);
  });
});

// `skiplock list`, `retry`, `cancel` and `delete`, run as a user runs them: the built CLI in a child process.
import { afterEach, describe, expect, it } from "vitest";
import type { TaskStatus } from "../src/index.js";
import { DATABASE_URL, REDIS_URL, runCli } from "./helpers.js";
import { schemaFixture } from "./schema-fixture.js";

const env = schemaFixture({ label: "cli_tasks" });
const cli = (args: string[]) => runCli(args, { DATABASE_URL, REDIS_URL, SKIPLOCK_SCHEMA: env.schema });

afterEach(async () => {
  await env.pool.query(`DELETE FROM "${env.schema}".tasks`);
});

/** Writes task rows in the given states (queue "mail" for odd positions); returns their ids in order. */
async function insertRows(statuses: TaskStatus[], meta: object = {}): Promise<string[]> {
  const { rows } = await env.pool.query<{ id: string }>(
    `INSERT INTO "${env.schema}".tasks (name, queue, status, error, meta, attempt, finished_at)
     SELECT 'job.' || i, CASE WHEN i % 2 = 1 THEN 'mail' ELSE 'default' END, s,
            CASE WHEN s = 'FAILED' THEN 'Error: broke on ' || i || E'\n    at stack' END, $2::jsonb,
            CASE WHEN s = 'PENDING' THEN 0 ELSE 1 END,
            CASE WHEN s IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN now() END
       FROM unnest($1::text[]) WITH ORDINALITY AS u(s, i)
      ORDER BY i
     RETURNING id::text AS id`,
    [statuses, JSON.stringify(meta)],
  );
  return rows.map((r) => r.id);
}

const statusOf = async (id: string) =>
  (await env.pool.query(`SELECT status FROM "${env.schema}".tasks WHERE id = $1`, [id])).rows[0]?.status ?? null;

const lines = (text: string) => text.split("\n").filter((l) => l !== "");

describe("skiplock list", () => {
  it("prints a table, newest first, and how to get the next page", async () => {
    const ids = await insertRows(["COMPLETED", "FAILED", "PENDING"]);
    const r = await cli(["list", "--limit", "2"]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    const out = lines(r.stdout);
    expect(out[0]).toMatch(/^ID\s+STATUS\s+QUEUE\s+NAME\s+ATTEMPT\s+CREATED$/);
    expect(out[1]).toMatch(new RegExp(`^${ids[2]}\\s+PENDING\\s+mail\\s+job\\.3\\s+0\\s+\\d{4}-`));
    expect(out[2]).toMatch(new RegExp(`^${ids[1]}\\s+FAILED\\s+default\\s+job\\.2\\s+1\\s+.*Error: broke on 2$`));
    expect(out[3]).toBe(`more: add --after ${ids[1]}`);
    expect(out).toHaveLength(4);

    const next = await cli(["list", "--limit", "2", "--after", ids[1]!]);
    expect(lines(next.stdout).slice(1)).toEqual([expect.stringMatching(new RegExp(`^${ids[0]}\\s+COMPLETED`))]);
    expect(lines((await cli(["list", "--after", ids[0]!])).stdout)).toEqual(["no more tasks"]);
  });

  it("filters by status, queue, name and meta, and prints JSON with --json", async () => {
    const ids = await insertRows(["FAILED", "FAILED", "CANCELLED", "COMPLETED"], { tenant: "acme", n: 1 });
    const json = async (args: string[]) => {
      const r = await cli(["list", "--json", ...args]);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { tasks: { id: string }[]; next: string | null };
    };
    const page = await json(["--status", "failed,CANCELLED"]);
    expect(page).toMatchObject({ next: null });
    expect(page.tasks.map((t) => t.id)).toEqual([ids[2], ids[1], ids[0]]);
    expect(
      (await json(["--status", "FAILED", "--status", "COMPLETED", "--queue", "mail"])).tasks.map((t) => t.id),
    ).toEqual([ids[0]]);
    expect((await json(["--name", "job.4"])).tasks.map((t) => t.id)).toEqual([ids[3]]);
    expect((await json(["--meta", "tenant=acme", "--meta", "n:=1", "--limit", "1"])).next).toBe(ids[3]);
    expect((await json(["--meta", "n=1"])).tasks).toEqual([]); // "1" the string, not the number
    expect(lines((await cli(["list", "--queue", "nowhere"])).stdout)).toEqual(["no tasks"]);
  });

  it("refuses bad flags with one line and exit code 1", async () => {
    for (const [args, re] of [
      [["--status", "DONE"], /invalid option --status: expected one of PENDING/],
      [["--limit", "0"], /invalid option --limit: expected an integer between 1 and 1000/],
      [["--after", "x"], /invalid task id "x"/],
      [["--meta", "novalue"], /invalid option --meta/],
    ] as const) {
      const r = await cli(["list", ...args]);
      expect(r.code).toBe(1);
      expect(lines(r.stderr)).toEqual([expect.stringMatching(re)]);
    }
  });
});

describe("skiplock retry / cancel / delete", () => {
  it("retry: one line per id, exit 1 when any could not be retried", async () => {
    const [failed, cancelled, pending] = await insertRows(["FAILED", "CANCELLED", "PENDING"]);
    const r = await cli(["retry", failed!, cancelled!, pending!, "999999999"]);
    expect(r.code).toBe(1);
    expect(lines(r.stdout)).toEqual([
      `retried ${failed}: PENDING, due now (attempt 1 so far)`,
      `retried ${cancelled}: PENDING, due now (attempt 1 so far)`,
    ]);
    expect(lines(r.stderr)).toEqual([
      `skiplock: error: cannot retry task ${pending}: it is PENDING, expected FAILED or CANCELLED`,
      "skiplock: error: no task with id 999999999",
    ]);
    expect(await statusOf(failed!)).toBe("PENDING");
    expect(await statusOf(cancelled!)).toBe("PENDING");
  });

  it("cancel: cancels PENDING tasks, says which it could not, exit 0 only when all were", async () => {
    const [p1, p2, done] = await insertRows(["PENDING", "PENDING", "COMPLETED"]);
    const ok = await cli(["cancel", p1!, p2!]);
    expect(ok).toMatchObject({ code: 0, stderr: "" });
    expect(lines(ok.stdout)).toEqual([`cancelled ${p1}`, `cancelled ${p2}`]);
    const bad = await cli(["cancel", done!, "abc"]);
    expect(bad.code).toBe(1);
    expect(lines(bad.stderr)).toEqual([
      `skiplock: error: task ${done} is already COMPLETED; not cancelled`,
      'skiplock: error: invalid task id "abc": expected a positive integer string',
    ]);
    expect(await statusOf(p1!)).toBe("CANCELLED");
  });

  it("delete: deletes finished tasks, refuses live ones (cancel it first)", async () => {
    const [done, failed, pending] = await insertRows(["COMPLETED", "FAILED", "PENDING"]);
    const r = await cli(["delete", done!, failed!, pending!]);
    expect(r.code).toBe(1);
    expect(lines(r.stdout)).toEqual([`deleted ${done} (COMPLETED job.1)`, `deleted ${failed} (FAILED job.2)`]);
    expect(lines(r.stderr)).toEqual([
      `skiplock: error: cannot delete task ${pending}: it is PENDING, expected COMPLETED, FAILED or CANCELLED (cancel it first)`,
    ]);
    expect(await statusOf(done!)).toBeNull();
    expect(await statusOf(pending!)).toBe("PENDING");
    expect((await cli(["delete"])).stderr).toMatch(/missing required argument 'ids'/);
  });
});

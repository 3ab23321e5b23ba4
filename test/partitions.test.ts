// The tasks table is partitioned by status: live rows in tasks_live, finished ones in tasks_done (migration 0003).
// A finished task moves between partitions, and a statement that meets a row moved under it fails in Postgres with a
// serialization error instead of following it; these tests check that such statements are run again and then
// behave as they would on an unpartitioned table, and that the migration carries an existing table over.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadMigrations, migrate } from "../src/db/migrate.js";
import { SkiplockClient } from "../src/index.js";
import { completeTasks } from "../src/sql/finish.js";
import { DATABASE_URL, freshSchema, quiet, uniqueName, waitFor, type SchemaEnv } from "./helpers.js";

let env: SchemaEnv;
let tasks: string;

beforeAll(async () => {
  env = await freshSchema("partitions");
  tasks = `"${env.schema}".tasks`;
});

afterAll(async () => {
  await env?.drop();
});

/** Where each row is, by id: its partition and status. */
async function placed(pool: pg.Pool, table: string, ids: string[]): Promise<Record<string, string>> {
  const { rows } = await pool.query(
    `SELECT id::text, tableoid::regclass::text AS part, status FROM ${table} WHERE id = ANY($1::bigint[])`,
    [ids],
  );
  return Object.fromEntries(rows.map((r) => [r.id, `${r.part.replace(/^.*\./, "")} ${r.status}`]));
}

/** A transaction on its own connection that changes a row and keeps it locked until `commit()`. */
async function holdUpdate(text: string, values: unknown[]): Promise<{ commit: () => Promise<void>; pid: number }> {
  const c = new pg.Client({ connectionString: DATABASE_URL });
  await c.connect();
  await c.query("BEGIN");
  await c.query(text, values);
  const pid = (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
  return {
    pid,
    commit: async () => {
      await c.query("COMMIT");
      await c.end();
    },
  };
}

/** Waits until some session waits for the lock `holder` holds. */
async function blockedBy(holder: number): Promise<void> {
  await waitFor("a statement waiting for the held row", async () => {
    const { rows } = await env.pool.query(`SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, [
      holder,
    ]);
    return rows.length > 0;
  });
}

describe("partitions", () => {
  it("an outcome write that waited on a row another transaction finished finds the lease gone, and writes the rest", async () => {
    const { rows } = await env.pool.query(
      `INSERT INTO ${tasks} (name, status, worker_id, attempt, started_at, heartbeat_at)
       SELECT 'noop', 'PROGRESS', 'me', 1, now(), now() FROM generate_series(1, 3) RETURNING id::text`,
    );
    const ids = rows.map((r) => r.id as string);
    // The sweeper, say, fails the first task and has not committed yet.
    const sweep = await holdUpdate(`UPDATE ${tasks} SET status = 'FAILED', finished_at = now() WHERE id = $1`, [
      ids[0],
    ]);
    const outcome = completeTasks(
      env.pool,
      tasks,
      "me",
      ids.map((id) => ({ id, attempt: 1, resultJson: "1", duration: 0.01 })),
    );
    await blockedBy(sweep.pid);
    await sweep.commit();
    expect(await outcome).toEqual([ids[0]]);
    expect(await placed(env.pool, tasks, ids)).toEqual({
      [ids[0]!]: "tasks_done FAILED",
      [ids[1]!]: "tasks_done COMPLETED",
      [ids[2]!]: "tasks_done COMPLETED",
    });
  });

  it("cancelTask that waited on a task another caller cancelled returns it cancelled", async () => {
    const client = new SkiplockClient({ databaseUrl: DATABASE_URL, schema: env.schema, redisUrl: null, logger: quiet });
    try {
      const task = await client.createTask("noop");
      expect(await placed(env.pool, tasks, [task.id])).toEqual({ [task.id]: "tasks_live PENDING" });
      const other = await holdUpdate(`UPDATE ${tasks} SET status = 'CANCELLED', finished_at = now() WHERE id = $1`, [
        task.id,
      ]);
      const cancelled = client.cancelTask(task.id);
      await blockedBy(other.pid);
      await other.commit();
      expect((await cancelled).status).toBe("CANCELLED");
      expect(await placed(env.pool, tasks, [task.id])).toEqual({ [task.id]: "tasks_done CANCELLED" });
    } finally {
      await client.close();
    }
  });

  it("migrating a table made before the partitions keeps every row, in its partition, and every id", async () => {
    const schema = uniqueName("partitions_old");
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    try {
      // The schema as the first two migrations left it, with tasks in every status.
      const before = (await loadMigrations()).filter((m) => m.id < 3);
      await pool.query(`CREATE SCHEMA "${schema}"`);
      await pool.query(
        `CREATE TABLE "${schema}".migrations (id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      for (const m of before) {
        await pool.query(`SET search_path TO "${schema}"; ${m.sql}; RESET search_path`);
        await pool.query(`INSERT INTO "${schema}".migrations (id, name) VALUES ($1, $2)`, [m.id, m.name]);
      }
      const old = `"${schema}".tasks`;
      const { rows } = await pool.query(
        `INSERT INTO ${old} (name, status, result) SELECT 'noop', s, to_jsonb(s)
           FROM unnest(ARRAY['PENDING', 'PROGRESS', 'COMPLETED', 'FAILED', 'CANCELLED']) AS s RETURNING id::text`,
      );
      const ids = rows.map((r) => r.id as string);
      await pool.query(`DELETE FROM ${old} WHERE id = $1`, [ids[4]]); // the sequence is ahead of max(id)

      expect((await migrate({ databaseUrl: DATABASE_URL, schema })).applied[0]).toBe("0003_live_and_finished");
      expect(await placed(pool, old, ids)).toEqual({
        [ids[0]!]: "tasks_live PENDING",
        [ids[1]!]: "tasks_live PROGRESS",
        [ids[2]!]: "tasks_done COMPLETED",
        [ids[3]!]: "tasks_done FAILED",
      });
      expect((await pool.query(`SELECT result FROM ${old} WHERE id = $1`, [ids[2]])).rows[0].result).toBe("COMPLETED");
      // New ids carry on after every id handed out before, including the deleted one's.
      const next = (await pool.query(`INSERT INTO ${old} (name) VALUES ('noop') RETURNING id::text`)).rows[0].id;
      expect(BigInt(next)).toBeGreaterThan(BigInt(ids[4]!));
      // The claim index is there, on the live partition, as the claim statement expects.
      const { rows: idx } = await pool.query(
        `SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = $1::regclass ORDER BY 1`,
        [`"${schema}".tasks_live`],
      );
      expect(idx.map((r) => r.name.replace(/^.*\./, ""))).toEqual([
        "tasks_claim_idx",
        "tasks_live_pkey",
        "tasks_running_idx",
        "tasks_unique_key_idx",
      ]);
    } finally {
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    }
  });
});

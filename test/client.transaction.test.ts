import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { InvalidOptionError, SkiplockClient, TransactionNotOpenError, type Task } from "../src/index.js";
import { quiet } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";

// Workers poll only every 30 s here: a task that starts within the wait below was started by the bell.
const env = workerFixture({ label: "transaction", workerDefaults: { pollInterval: 30 } });
const BELL_WAIT = 10;

const exists = async (id: string) =>
  (await env.pool.query(`SELECT 1 FROM "${env.schema}".tasks WHERE id = $1`, [id])).rowCount === 1;

/** A pg client of the test's own (not skiplock's), connected; ended by the caller. */
async function ownClient(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: env.databaseUrl });
  await c.connect();
  return c;
}

/** Resolves with the next task:enqueued of `client` for the task `id`. */
const enqueued = (client: SkiplockClient, id: () => string | undefined) =>
  new Promise<{ task: Task; replaced: boolean }>((resolve) => {
    const on = (e: { task: Task; replaced: boolean }) => {
      if (e.task.id !== id()) return;
      client.off("task:enqueued", on);
      resolve(e);
    };
    client.on("task:enqueued", on);
  });

beforeAll(async () => {
  await env.pool.query(`CREATE TABLE "${env.schema}".orders (id serial PRIMARY KEY, item text)`);
});

describe("createTask in a pg Client's transaction", () => {
  it("writes nothing a worker can see before COMMIT, and the bell starts it after", async () => {
    const ran: string[] = [];
    await env.startWorker({ tasks: { job: (s: string) => void ran.push(s) } });
    const c = await ownClient();
    try {
      await c.query("BEGIN");
      const task = await env.client.createTask("job", ["in-tx"], { transaction: c });
      expect(task.status).toBe("PENDING");
      expect(await exists(task.id)).toBe(false);
      // The worker is running and claiming: a task enqueued outside runs, the one in the transaction does not.
      const outside = await env.client.createTask("job", ["outside"]);
      await env.finished(outside, BELL_WAIT);
      expect(ran).toEqual(["outside"]);
      await c.query("COMMIT");
      expect(await env.finished(task, BELL_WAIT)).toMatchObject({ status: "COMPLETED" });
      expect(ran).toEqual(["outside", "in-tx"]);
    } finally {
      await c.end();
    }
  });

  it("leaves nothing after ROLLBACK", async () => {
    const c = await ownClient();
    try {
      await c.query("BEGIN");
      const [a, b] = await env.client.createTasks([{ name: "job" }, { name: "job", uniqueKey: "rolled" }], {
        transaction: c,
      });
      await c.query("ROLLBACK");
      expect(await exists(a!.id)).toBe(false);
      expect(await exists(b!.id)).toBe(false);
      // The key is free again.
      const again = await env.client.createTask("job", [], { uniqueKey: "rolled" });
      expect(again.id).not.toBe(b!.id);
    } finally {
      await c.end();
    }
  });

  it("works with a PoolClient", async () => {
    await env.startWorker({ tasks: { job: () => "ok" } });
    const pool = new pg.Pool({ connectionString: env.databaseUrl, max: 2 });
    const c = await pool.connect();
    try {
      await c.query("BEGIN");
      await c.query(`INSERT INTO "${env.schema}".orders (item) VALUES ('pool-client')`);
      const task = await env.client.createTask("job", [], { transaction: c });
      await c.query("COMMIT");
      expect(await env.finished(task, BELL_WAIT)).toMatchObject({ status: "COMPLETED", result: "ok" });
    } finally {
      c.release();
      await pool.end();
    }
  });

  it("refuses a client that is not in a transaction, aborted, or closed", async () => {
    const c = await ownClient();
    await expect(env.client.createTask("job", [], { transaction: c })).rejects.toThrow(/not in a transaction/);
    await c.query("BEGIN");
    await c.query("SELECT 1/0").catch(() => {});
    const aborted = await env.client.createTask("job", [], { transaction: c }).catch((e: unknown) => e);
    expect(aborted).toBeInstanceOf(TransactionNotOpenError);
    expect((aborted as Error).message).toMatch(/aborted/);
    await c.query("ROLLBACK");
    await c.end();
    const closed = await env.client.createTask("job", [], { transaction: c }).catch((e: unknown) => e);
    expect(closed).toBeInstanceOf(TransactionNotOpenError);
    expect((closed as Error).message).toMatch(/closed/);
  });

  it("refuses what is not a transaction", async () => {
    const pool = new pg.Pool({ connectionString: env.databaseUrl });
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
    try {
      for (const tx of [pool, db, {}, "trx", 5]) {
        const err = await env.client.createTask("job", [], { transaction: tx as never }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(InvalidOptionError);
        expect(err).toMatchObject({ option: "transaction" });
      }
      const err = await env.client.createTasks([{ name: "job", transaction: {} } as never]).catch((e: unknown) => e);
      expect(err).toMatchObject({ option: "transaction" });
    } finally {
      await db.destroy();
    }
  });
});

describe("uniqueMode replace in a caller's transaction", () => {
  const setStatus = (id: string, status: string) =>
    env.pool.query(`UPDATE "${env.schema}".tasks SET status = $2 WHERE id = $1`, [id, status]);

  it("updates a pending holder only if the caller commits", async () => {
    const holder = await env.client.createTask("job", ["first"], { uniqueKey: "tx-replace", delay: 600 });
    const c = await ownClient();
    try {
      await c.query("BEGIN");
      const t = await env.client.createTask("job", ["second"], {
        uniqueKey: "tx-replace",
        uniqueMode: "replace",
        delay: 600,
        transaction: c,
      });
      expect(t).toMatchObject({ id: holder.id, args: ["second"] });
      await c.query("ROLLBACK");
      expect((await env.client.getTask(holder.id))?.args).toEqual(["first"]);
      await c.query("BEGIN");
      await env.client.createTask("job", ["third"], {
        uniqueKey: "tx-replace",
        uniqueMode: "replace",
        delay: 600,
        transaction: c,
      });
      await c.query("COMMIT");
      expect((await env.client.getTask(holder.id))?.args).toEqual(["third"]);
    } finally {
      await c.end();
    }
  });

  it("never locks a running holder in the caller's transaction", async () => {
    const running = await env.client.createTask("job", ["running"], { uniqueKey: "tx-running" });
    await setStatus(running.id, "PROGRESS");
    const c = await ownClient();
    try {
      await c.query("BEGIN");
      const next = await env.client.createTask("job", ["next"], {
        uniqueKey: "tx-running",
        uniqueMode: "replace",
        delay: 600,
        transaction: c,
      });
      expect(next.id).not.toBe(running.id);
      // The worker's writes to the running task need not wait for the caller's commit.
      const locked = await env.pool.query(`SELECT id FROM "${env.schema}".tasks WHERE id = $1 FOR UPDATE NOWAIT`, [
        running.id,
      ]);
      expect(locked.rowCount).toBe(1);
      await c.query("COMMIT");
      expect(await env.client.getTask(next.id)).toMatchObject({ args: ["next"], uniqueKey: "tx-running" });
      expect(await env.client.createTask("job", [], { uniqueKey: "tx-running" })).toMatchObject({ id: next.id });
    } finally {
      await c.end();
    }
  });
});

describe("createTask in a kysely Transaction", () => {
  it("commits with the caller's transaction, plugins and all", async () => {
    await env.startWorker({ tasks: { job: (n: number) => n * 2 } });
    const pool = new pg.Pool({ connectionString: env.databaseUrl });
    const { CamelCasePlugin } = await import("kysely");
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }), plugins: [new CamelCasePlugin()] });
    try {
      const task = await db.transaction().execute(async (trx) => {
        await trx.withSchema(env.schema).insertInto("orders").values({ item: "kysely" }).execute();
        return env.client.createTask("job", [21], { transaction: trx, meta: { someKey: 1 } });
      });
      expect(task).toMatchObject({ args: [21], meta: { someKey: 1 } });
      expect(await env.finished(task, BELL_WAIT)).toMatchObject({ status: "COMPLETED", result: 42 });
    } finally {
      await db.destroy();
    }
  });

  it("leaves nothing after a rollback, and refuses a finished transaction", async () => {
    const pool = new pg.Pool({ connectionString: env.databaseUrl });
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
    try {
      let id = "";
      let kept: unknown;
      await expect(
        db.transaction().execute(async (trx) => {
          kept = trx;
          id = (await env.client.createTask("job", [], { transaction: trx })).id;
          throw new Error("changed my mind");
        }),
      ).rejects.toThrow("changed my mind");
      expect(await exists(id)).toBe(false);
      const err = await env.client.createTask("job", [], { transaction: kept as never }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransactionNotOpenError);
    } finally {
      await db.destroy();
    }
  });
});

describe("client.transaction", () => {
  it("commits the caller's rows and tasks together and rings after the commit", async () => {
    await env.startWorker({ tasks: { ship: (order: number) => ({ shipped: order }) } });
    let seen: Task | undefined;
    const got = enqueued(env.client, () => seen?.id);
    const { order, task } = await env.client.transaction(async (tx) => {
      const row = await tx.db
        .withSchema(env.schema)
        .insertInto("orders")
        .values({ item: "book" })
        .returning("id")
        .executeTakeFirstOrThrow();
      const t = await tx.createTask("ship", [row.id]);
      expect(await exists(t.id)).toBe(false);
      seen = t;
      return { order: row.id as number, task: t };
    });
    expect((await got).task.id).toBe(task.id);
    expect(await env.finished(task, BELL_WAIT)).toMatchObject({ status: "COMPLETED", result: { shipped: order } });
  });

  it("rolls back and rethrows when fn throws", async () => {
    let id = "";
    const err = await env.client
      .transaction(async (tx) => {
        id = (await tx.createTasks([{ name: "ship", args: [0] }]))[0]!.id;
        await tx.db.withSchema(env.schema).insertInto("orders").values({ item: "never" }).execute();
        throw new Error("no stock");
      })
      .catch((e: unknown) => e);
    expect((err as Error).message).toBe("no stock");
    expect(await exists(id)).toBe(false);
    const rows = await env.pool.query(`SELECT 1 FROM "${env.schema}".orders WHERE item = 'never'`);
    expect(rows.rowCount).toBe(0);
  });
});

describe("task:enqueued", () => {
  it("fires after the client's own insert, and a throwing listener does not fail createTask", async () => {
    const seen: string[] = [];
    const boom = () => {
      throw new Error("listener bug");
    };
    env.client.on("task:enqueued", boom);
    env.client.on("task:enqueued", ({ task }) => void seen.push(task.id));
    try {
      const task = await env.client.createTask("job", []);
      expect(seen).toEqual([task.id]);
    } finally {
      env.client.removeAllListeners("task:enqueued");
    }
  });

  it("fires for a caller's transaction once it commits, never for one rolled back", async () => {
    const client = new SkiplockClient({
      databaseUrl: env.databaseUrl,
      schema: env.schema,
      redisUrl: null,
      logger: quiet,
    });
    const seen: string[] = [];
    client.on("task:enqueued", ({ task }) => void seen.push(task.id));
    const c = await ownClient();
    try {
      await c.query("BEGIN");
      const rolledBack = await client.createTask("job", [], { transaction: c });
      await c.query("ROLLBACK");
      await c.query("BEGIN");
      const committed = await client.createTask("job", [], { transaction: c });
      const got = enqueued(client, () => committed.id);
      expect(seen).toEqual([]);
      await c.query("COMMIT");
      await got;
      expect(seen).toEqual([committed.id]);
      expect(seen).not.toContain(rolledBack.id);
    } finally {
      await c.end();
      await client.close();
    }
  });

  it("rings for a transaction committed just before close()", async () => {
    const client = new SkiplockClient({
      databaseUrl: env.databaseUrl,
      schema: env.schema,
      redisUrl: null,
      logger: quiet,
    });
    const seen: string[] = [];
    client.on("task:enqueued", ({ task }) => void seen.push(task.id));
    const c = await ownClient();
    try {
      await c.query("BEGIN");
      const task = await client.createTask("job", [], { transaction: c });
      await c.query("COMMIT");
      await client.close();
      expect(seen).toEqual([task.id]);
    } finally {
      await c.end();
    }
  });
});

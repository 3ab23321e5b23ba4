import pg from "pg";
import { describe, expect, it, vi } from "vitest";
import { InvalidNameError, InvalidOptionError, QueueNotAllowedError, SkiplockClient } from "../src/index.js";
import { quiet } from "./helpers.js";
import { schemaFixture } from "./schema-fixture.js";

const env = schemaFixture({ label: "enqueue" });

const count = async () => (await env.pool.query(`SELECT count(*)::int AS n FROM "${env.schema}".tasks`)).rows[0].n;

const clientWith = (options: object = {}) =>
  new SkiplockClient({ databaseUrl: env.databaseUrl, schema: env.schema, redisUrl: null, logger: quiet, ...options });

describe("the queue allow-list", () => {
  it("refuses other queues before anything is written", async () => {
    const client = clientWith({ queues: ["default", "emails"] });
    try {
      const before = await count();
      await client.createTask("x", [], { queue: "emails" });
      await client.createTask("x");
      const err = await client.createTask("x", [], { queue: "reports" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(QueueNotAllowedError);
      expect(err).toMatchObject({ code: "QUEUE_NOT_ALLOWED", queue: "reports", allowed: ["default", "emails"] });
      const batch = await client.createTasks([{ name: "x" }, { name: "x", queue: "reports" }]).catch((e: unknown) => e);
      expect(batch).toBeInstanceOf(QueueNotAllowedError);
      expect((batch as Error).message).toMatch(/specs\[1\]/);
      const inTx = await client
        .transaction((tx) => tx.createTask("x", [], { queue: "reports" }))
        .catch((e: unknown) => e);
      expect(inTx).toBeInstanceOf(QueueNotAllowedError);
      expect(await count()).toBe(before + 2);
    } finally {
      await client.close();
    }
  });

  it("reads SKIPLOCK_QUEUES; absent or empty allows any queue", async () => {
    vi.stubEnv("SKIPLOCK_QUEUES", " emails , sms,");
    const fromEnv = clientWith();
    await expect(fromEnv.createTask("x", [], { queue: "sms" })).resolves.toMatchObject({ queue: "sms" });
    await expect(fromEnv.createTask("x")).rejects.toBeInstanceOf(QueueNotAllowedError);
    // The option wins over the environment; [] allows any.
    const any = clientWith({ queues: [] });
    await expect(any.createTask("x", [], { queue: "whatever" })).resolves.toMatchObject({ queue: "whatever" });
    vi.stubEnv("SKIPLOCK_QUEUES", "");
    const empty = clientWith();
    await expect(empty.createTask("x", [], { queue: "else" })).resolves.toMatchObject({ queue: "else" });
    await Promise.all([fromEnv.close(), any.close(), empty.close()]);
  });

  it("checks the list itself", () => {
    expect(() => clientWith({ queues: "emails" })).toThrow(InvalidOptionError);
    expect(() => clientWith({ queues: ["ok", "not ok"] })).toThrow(InvalidNameError);
  });
});

describe("concurrent createTask calls", () => {
  it("share inserts, each caller getting its own task in order", async () => {
    const tasks = await Promise.all(
      Array.from({ length: 64 }, (_, i) => env.client.createTask("shared", [i], { priority: i % 3 })),
    );
    expect(tasks.map((t) => t.args)).toEqual(Array.from({ length: 64 }, (_, i) => [i]));
    expect(tasks.map((t) => t.priority)).toEqual(Array.from({ length: 64 }, (_, i) => i % 3));
    for (const t of tasks.slice(0, 5)) expect(await env.client.getTask(t.id)).toEqual(t);
    // Rows written by one statement share its transaction id: far fewer transactions than callers.
    const { rows } = await env.pool.query(
      `SELECT count(DISTINCT xmin::text)::int AS n FROM "${env.schema}".tasks WHERE name = 'shared'`,
    );
    expect(rows[0].n).toBeLessThan(64);
  });

  it("give each caller its own error when the shared statement fails for one of them", async () => {
    // A trigger refuses one task by name, as Postgres might refuse one row: the statement fails for the whole batch.
    await env.pool.query(`
      CREATE FUNCTION "${env.schema}".refuse_poison() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'poison refused' USING ERRCODE = 'P0001'; END $$;
      CREATE TRIGGER refuse_poison BEFORE INSERT ON "${env.schema}".tasks_live
        FOR EACH ROW WHEN (NEW.name = 'poison') EXECUTE FUNCTION "${env.schema}".refuse_poison();`);
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => env.client.createTask(i === 7 ? "poison" : "fine", [i])),
      );
      expect(results[7]).toMatchObject({ status: "rejected", reason: { message: "poison refused" } });
      const ok = results.filter((r) => r.status === "fulfilled");
      expect(ok).toHaveLength(19);
      // Each caller got its own task, and nothing else was written.
      for (const [i, r] of results.entries()) if (r.status === "fulfilled") expect(r.value.args).toEqual([i]);
      const { rows } = await env.pool.query(`SELECT args FROM "${env.schema}".tasks WHERE name = 'fine'`);
      expect(rows.map((r) => r.args[0]).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 20 }, (_, i) => i).filter((i) => i !== 7),
      );
      // A spec refused before writing fails alone too.
      const mixed = await Promise.allSettled([
        env.client.createTask("fine", ["a"]),
        env.client.createTask("fine", [1n]),
        env.client.createTask("fine", ["b"]),
      ]);
      expect(mixed.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    } finally {
      await env.pool.query(`DROP TRIGGER refuse_poison ON "${env.schema}".tasks_live`);
    }
  });

  it("with unique keys among them, all callers of one key get its one task", async () => {
    const tasks = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        env.client.createTask("keyed", [i], i % 2 === 0 ? { uniqueKey: "shared-key" } : {}),
      ),
    );
    const keyed = tasks.filter((_, i) => i % 2 === 0);
    expect(new Set(keyed.map((t) => t.id)).size).toBe(1);
    expect(new Set(tasks.filter((_, i) => i % 2 === 1).map((t) => t.id)).size).toBe(15);
  });

  it("a keyed call waiting for another transaction's key holds up no other call", async () => {
    const c = new pg.Client({ connectionString: env.databaseUrl });
    await c.connect();
    try {
      await c.query("BEGIN");
      const held = await env.client.createTask("keyed", [], { uniqueKey: "held-elsewhere", transaction: c });
      // Waits on the key's index entry until the transaction above ends.
      const waiting = env.client.createTask("keyed", [], { uniqueKey: "held-elsewhere" });
      const others = await Promise.all(Array.from({ length: 10 }, (_, i) => env.client.createTask("other", [i])));
      expect(others).toHaveLength(10);
      await c.query("COMMIT");
      expect((await waiting).id).toBe(held.id);
    } finally {
      await c.end();
    }
  });
});

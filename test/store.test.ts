import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isConnectionError } from "../src/db/errors.js";
import { Store } from "../src/db/store.js";
import { DATABASE_URL, FlakyProxy, freshSchema, waitFor, type SchemaEnv } from "./helpers.js";

let env: SchemaEnv;

beforeAll(async () => {
  env = await freshSchema("store");
});

afterAll(async () => {
  await env?.drop();
});

async function one<T>(q: { query: Store["hotQueries"]["query"] }, text: string): Promise<T> {
  const { rows } = await q.query<{ v: T }>({ text: `SELECT (${text}) AS v` });
  return rows[0]!.v;
}

describe("Store", () => {
  it("claims on a connection of their own that does not wait for the WAL flush; everything else waits", async () => {
    const store = new Store({ databaseUrl: DATABASE_URL, schema: env.schema, poolSize: 2, claimConnection: true });
    try {
      expect(await one(store.claimConnection!, "current_setting('synchronous_commit')")).toBe("off");
      // Set once per connection, and kept: a second query on it still sees it.
      expect(await one(store.claimConnection!, "current_setting('synchronous_commit')")).toBe("off");
      expect(await one(store.hotQueries, "current_setting('synchronous_commit')")).toBe("on");
      expect(await one(store.pool, "current_setting('synchronous_commit')")).toBe("on");
      const claimPid = await one<number>(store.claimConnection!, "pg_backend_pid()");
      expect(await one<number>(store.claimConnection!, "pg_backend_pid()")).toBe(claimPid);
      // One connection, set up once; a replacement is set up and counted (the worker watches that count).
      expect(store.claimConnectionsOpened).toBe(1);
      await env.pool.query("SELECT pg_terminate_backend($1)", [claimPid]);
      // The pool may or may not notice before the next query: that one fails, or goes to a new connection.
      await waitFor(
        "a new claim connection",
        async () => (await one<number>(store.claimConnection!, "pg_backend_pid()")) !== claimPid,
        5000,
        20,
      );
      expect(await one(store.claimConnection!, "current_setting('synchronous_commit')")).toBe("off");
      expect(store.claimConnectionsOpened).toBe(2);
    } finally {
      await store.close();
    }
    const plain = new Store({ databaseUrl: DATABASE_URL, schema: env.schema, poolSize: 1 });
    expect(plain.claimConnection).toBeNull();
    await plain.close();
  });

  it("fails a query that gets no answer within queryTimeout as a lost connection, and drops that connection", async () => {
    const proxy = new FlakyProxy(Number(new URL(DATABASE_URL).port || 5432), new URL(DATABASE_URL).hostname);
    await proxy.start();
    const store = new Store({
      databaseUrl: proxy.url(DATABASE_URL),
      schema: env.schema,
      poolSize: 1,
      queryTimeout: 300,
    });
    try {
      const silentPid = await one<number>(store.hotQueries, "pg_backend_pid()");
      proxy.blackhole(); // the statement reaches the server, its answer never comes back
      const err = await store.hotQueries.query({ text: "SELECT 1" }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/no answer within 0.3 s/);
      expect(isConnectionError(err)).toBe(true);
      proxy.resetAll(); // the network is back
      // The pool's only connection was the silent one: the next query gets a new one, and it answers.
      expect(await one<number>(store.hotQueries, "pg_backend_pid()")).not.toBe(silentPid);
      // An answer that is an error (not a timeout) comes back as Postgres gave it.
      await expect(store.hotQueries.query({ text: "SELECT 1 / 0" })).rejects.toMatchObject({ code: "22012" });
      expect(await one<number>(store.hotQueries, "41 + 1")).toBe(42);
    } finally {
      await store.close();
      await proxy.stop();
    }
  });

  it("has the server cancel a statement running past 90% of queryTimeout, before the client gives up on it", async () => {
    const store = new Store({
      databaseUrl: DATABASE_URL,
      schema: env.schema,
      poolSize: 1,
      queryTimeout: 2000,
      claimConnection: true,
    });
    try {
      for (const q of [store.hotQueries, store.claimConnection!]) {
        expect(await one(q, "current_setting('statement_timeout')")).toBe("1800ms");
        await expect(q.query({ text: "SELECT pg_sleep(10)" })).rejects.toMatchObject({ code: "57014" });
      }
      expect(await one(store.claimConnection!, "current_setting('synchronous_commit')")).toBe("off");
    } finally {
      await store.close();
    }
  });
});

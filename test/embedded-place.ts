// The core test files also run on the embedded database (vitest project "embedded", SKIPLOCK_TEST_DB=pglite): the
// shared test database is then `pglite:memory`, one PGlite instance per test file, and a test's own pool goes
// through the same gate as skiplock's connections. Tests that cannot run there skip with `ON_EMBEDDED` reasons.
import type pg from "pg";
import { it } from "vitest";
import { openEmbeddedPool } from "../src/embedded/pool.js";
import { acquireEmbedded } from "../src/embedded/registry.js";

/** True in the embedded project. */
export const embedded = process.env.SKIPLOCK_TEST_DB === "pglite";

/** The database URL the embedded project's files share. */
export const EMBEDDED_TEST_URL = "pglite:memory";

/** Why a test skips on the embedded database, by what it needs. */
export const ON_EMBEDDED = {
  processes: "the embedded database serves one process; this test runs several",
  redis: "the embedded database has an in-process doorbell; this test is about Redis",
  connections: "the embedded database is one session; this test needs connections of its own (or a server)",
  server: "this test is about a Postgres server (its URL, its errors or its settings)",
  throughput: "this test drains thousands of tasks within a deadline set for a server's throughput",
} as const;

/**
 * A pg Pool on the embedded database at `url` for a test's own SQL. It holds a share of the instance until ended,
 * which keeps `pglite:memory` alive for the file.
 */
export function embeddedTestPool(url: string): pg.Pool {
  const ref = acquireEmbedded(url);
  const pool = openEmbeddedPool(ref, 4, (err) => err);
  const end = pool.end.bind(pool);
  pool.end = (async () => {
    await end();
    await ref.release();
  }) as typeof pool.end;
  return pool;
}

/**
 * `it` on a Postgres server; on the embedded database the test is skipped, its name saying why:
 * `serverOnly(ON_EMBEDDED.processes)("runs in two processes", async () => …)`.
 */
export function serverOnly(reason: string): typeof it {
  if (!embedded) return it;
  const skipped = ((name: string, ...rest: unknown[]) =>
    (it.skip as (...a: unknown[]) => void)(
      `${name} [skipped on the embedded database: ${reason}]`,
      ...rest,
    )) as typeof it;
  return skipped;
}

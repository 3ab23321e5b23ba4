import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { validateSchemaName } from "../config.js";
import { openEmbeddedPool } from "../embedded/pool.js";
import { acquireEmbedded } from "../embedded/registry.js";
import { isEmbeddedUrl } from "../embedded/url.js";
import { SchemaNotReadyError, SkiplockError } from "../errors.js";
import { classifyDatabaseError, databaseUnavailable, schemaNotReady } from "./errors.js";
import { Client } from "./pool.js";
import { quoteIdent } from "./store.js";

/** migrations/ at the package root, from src/db (sources) or dist/src/db (build). */
function migrationsDir(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  return fileURLToPath(
    new URL(here.includes("/dist/") ? "../../../migrations/" : "../../migrations/", import.meta.url),
  );
}

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export async function loadMigrations(dir = migrationsDir()): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      id: Number(file.slice(0, 4)),
      name: file.replace(/\.sql$/, ""),
      sql: await readFile(`${dir}/${file}`, "utf8"),
    })),
  );
}

export interface MigrateResult {
  applied: string[];
  schema: string;
}

/**
 * Brings the schema up to date. Each migration runs in its own transaction under a transaction-scoped advisory
 * lock keyed by the schema, so two processes migrating at once apply each file exactly once: the second waits,
 * then sees the first one's rows. See docs/architecture.md, Migrations.
 *
 * Nothing here outlives a transaction, so it runs as well through PgBouncer in transaction pooling mode, which keeps
 * a transaction on one server connection: migration files must keep it so (`SET LOCAL`, never `SET`; no
 * `CREATE INDEX CONCURRENTLY`). See docs/architecture.md, Migrations through PgBouncer.
 */
export async function migrate(options: { databaseUrl: string; schema: string }): Promise<MigrateResult> {
  const schema = validateSchemaName(options.schema);
  const ident = quoteIdent(schema);
  const migrations = await loadMigrations();
  const { client, close } = await connectToMigrate(options.databaseUrl, schema);
  const applied: string[] = [];
  try {
    for (const m of migrations) {
      await client.query("BEGIN");
      try {
        await client.query("SELECT pg_advisory_xact_lock(hashtext('skiplock.migrate'), hashtext($1))", [schema]);
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${ident}`);
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${ident}.migrations (
             id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
        );
        const done = await client.query(`SELECT 1 FROM ${ident}.migrations WHERE id = $1`, [m.id]);
        if (done.rowCount === 0) {
          // The row first: a concurrent migrator that somehow got past the lock would fail on the primary key.
          await client.query(`INSERT INTO ${ident}.migrations (id, name) VALUES ($1, $2)`, [m.id, m.name]);
          await client.query(`SET LOCAL search_path TO ${ident}`);
          await client.query(m.sql);
          applied.push(m.name);
        }
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {});
        throw err;
      }
    }
  } catch (err) {
    throw classifyDatabaseError(err, options.databaseUrl, schema);
  } finally {
    await close();
  }
  return { applied, schema };
}

/** A connection of its own on a server; on the embedded database, one from the process's shared instance. */
async function connectToMigrate(
  databaseUrl: string,
  schema: string,
): Promise<{ client: Pick<pg.ClientBase, "query">; close: () => Promise<void> }> {
  if (isEmbeddedUrl(databaseUrl)) {
    const ref = acquireEmbedded(databaseUrl);
    const pool = openEmbeddedPool(ref, 1, (err) => classifyDatabaseError(err, databaseUrl, schema));
    try {
      const client = await pool.connect();
      return {
        client,
        close: async () => {
          client.release();
          await pool.end();
          await ref.release();
        },
      };
    } catch (err) {
      await pool.end();
      await ref.release();
      throw err instanceof SkiplockError ? err : databaseUnavailable(databaseUrl, err);
    }
  }
  const client = new Client({ connectionString: databaseUrl, application_name: "skiplock migrate" });
  try {
    await client.connect();
  } catch (err) {
    throw databaseUnavailable(databaseUrl, err);
  }
  client.on("error", () => {});
  return { client, close: () => client.end().catch(() => {}) };
}

/** Fails with one clear line when the schema is missing or behind this version's migrations. */
export async function assertSchemaReady(q: pg.Pool, schema: string): Promise<void> {
  const latest = (await loadMigrations()).at(-1)?.id ?? 0;
  const ident = quoteIdent(schema);
  const exists = await q.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [`${ident}.migrations`]);
  if (!exists.rows[0]?.ok) {
    throw schemaNotReady(schema);
  }
  const r = await q.query<{ id: number | null }>(`SELECT max(id) AS id FROM ${ident}.migrations`);
  const current = r.rows[0]?.id ?? 0;
  if (current < latest) {
    throw new SchemaNotReadyError(
      `schema "${schema}" is at migration ${current}, this version needs ${latest}: run \`skiplock migrate\``,
    );
  }
}

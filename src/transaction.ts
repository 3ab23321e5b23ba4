import { CompiledQuery } from "kysely";
import type pg from "pg";
import type { Queryable } from "./db/statements.js";
import { InvalidOptionError, TransactionNotOpenError } from "./errors.js";

/**
 * A caller's open transaction, as createTask's `transaction` option takes it: a kysely `Transaction` or a
 * node-postgres `Client`/`PoolClient` after BEGIN. Recognized by shape, not by class: the caller's kysely or pg may
 * be another copy than skiplock's.
 */
export type TransactionLike = KyselyTransactionLike | PgClientLike;

/** What skiplock uses of a kysely Transaction (0.28). */
export interface KyselyTransactionLike {
  readonly isTransaction: boolean;
  withoutPlugins(): { executeQuery(query: CompiledQuery): Promise<{ rows: unknown[] }> };
}

/** What skiplock uses of a node-postgres Client or PoolClient. */
export interface PgClientLike {
  query(config: { text: string; values?: unknown[] }): Promise<{ rows: unknown[] }>;
  getTransactionStatus?(): string | null;
}

/**
 * The caller's transaction as a Queryable, after checking that it can take a statement now. Rows come back as
 * skiplock's own pool gives them (ids as strings, times as Dates) whatever type parsers or kysely plugins (such as
 * CamelCasePlugin) the caller's copy uses. Errors that mean the transaction is over or aborted become
 * TransactionNotOpenError.
 */
export function transactionQueryable(tx: unknown): Queryable {
  if (tx === null || typeof tx !== "object") {
    throw new InvalidOptionError("transaction", "expected a kysely Transaction or a node-postgres Client in BEGIN");
  }
  const t = tx as Record<string, unknown>;
  if (typeof t.withoutPlugins === "function" && "isTransaction" in t) {
    if (t.isTransaction !== true) {
      throw new InvalidOptionError(
        "transaction",
        "got a Kysely instance, not a Transaction: pass the `trx` of db.transaction().execute(async (trx) => …)",
      );
    }
    const executor = (tx as KyselyTransactionLike).withoutPlugins();
    return adapt((config) => executor.executeQuery(CompiledQuery.raw(config.text, config.values ?? [])));
  }
  if (typeof t.query === "function") {
    if (typeof t.totalCount === "number" && typeof t.connect === "function") {
      throw new InvalidOptionError(
        "transaction",
        "got a pg Pool, which is not a transaction: check out a client (pool.connect()), run BEGIN on it, pass it",
      );
    }
    assertPgClientInTransaction(t);
    const client = tx as PgClientLike;
    return adapt((config) => client.query(config));
  }
  throw new InvalidOptionError("transaction", "expected a kysely Transaction or a node-postgres Client in BEGIN");
}

/** pg keeps the server's last transaction status ("I" idle, "T" in a transaction, "E" aborted): check it first. */
function assertPgClientInTransaction(client: Record<string, unknown>): void {
  if (client._ending === true || client._ended === true || client._queryable === false) {
    throw new TransactionNotOpenError("the pg client is closed");
  }
  const status =
    typeof client.getTransactionStatus === "function"
      ? (client.getTransactionStatus as () => unknown)()
      : client._txStatus;
  if (status === "I") throw new TransactionNotOpenError("the pg client is not in a transaction (run BEGIN first)");
  if (status === "E") {
    throw new TransactionNotOpenError("the transaction is aborted (a statement in it failed): roll it back");
  }
}

type Run = (config: { text: string; values?: unknown[] }) => Promise<{ rows: unknown[] }>;

function adapt(run: Run): Queryable {
  return {
    async query<R extends pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<R>> {
      let result: { rows: unknown[] };
      try {
        result = await run({ text: config.text, values: config.values ?? [] });
      } catch (err) {
        throw notOpen(err) ?? err;
      }
      const rows = result.rows.map((r) => normalize(r as Record<string, unknown>)) as R[];
      return { rows, rowCount: rows.length, command: "", oid: 0, fields: [] };
    },
  };
}

/** The TransactionNotOpenError an error of the caller's transaction stands for, if any. */
function notOpen(err: unknown): TransactionNotOpenError | null {
  const e = err as { code?: unknown; message?: unknown } | null;
  const message = typeof e?.message === "string" ? e.message : "";
  if (e?.code === "25P02") {
    return new TransactionNotOpenError("the transaction is aborted (a statement in it failed): roll it back", {
      cause: err,
    });
  }
  if (/already (committed|rolled back)/i.test(message)) return new TransactionNotOpenError(message, { cause: err });
  if (/not queryable|Client was closed|Connection terminated/i.test(message)) {
    return new TransactionNotOpenError("the pg client is closed", { cause: err });
  }
  return null;
}

const TIME_COLUMNS = ["created_at", "updated_at", "run_at", "started_at", "finished_at", "heartbeat_at"];

/** A row as skiplock's pool parses it: bigint ids as strings, timestamps as Dates (a caller may parse otherwise). */
function normalize(row: Record<string, unknown>): Record<string, unknown> {
  if (typeof row.id === "number" || typeof row.id === "bigint") row.id = String(row.id);
  for (const c of TIME_COLUMNS) {
    const v = row[c];
    if (typeof v === "string") row[c] = new Date(v.replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00"));
  }
  return row;
}

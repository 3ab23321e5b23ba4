import pg from "pg";
import { perTable, run, type Queryable } from "../db/statements.js";
import { STATEMENT_JSON_CHARS } from "../json.js";
import { compareIds, insertedTask, type JsonValue, type Task, type TaskInsert } from "../task.js";
import { insertUnique } from "./insert-unique.js";
import { toRecordset } from "./recordset.js";

/*
 * A batch travels as one JSON document (args are JSON text already) that jsonb_to_recordset() turns into rows, and
 * only what the database decides comes back: each id, args as jsonb normalized them, run_at where it differs from
 * created_at, and now() once, in an extra row with a null id. Batches of 1,000 went in at about 60,000 tasks/s,
 * against 40,000 with parallel arrays returning every column. run_at is the caller's time (ISO text, to the
 * microsecond) or now() plus a delay, so delays do not depend on the client's clock; ids are drawn in input order.
 * See docs/architecture.md, Enqueueing.
 */
const batchText = (tasks: string, extra: string) => `WITH inserted AS (
     INSERT INTO ${tasks} (name, args, queue, priority, timeout, max_retries, run_at, meta)
     SELECT d.n, d.a, d.q, d.p, d.t, d.m, coalesce(d.r, now() + d.d * interval '1 second', now()), coalesce(d.x, '{}')
       FROM jsonb_to_recordset($1::jsonb)
         AS d(n text, a jsonb, q text, p int, t float8, m int, r timestamptz, d float8, x jsonb)
     RETURNING id, nullif(run_at, created_at) AS run_at, args)
   SELECT id, run_at, args FROM inserted
   UNION ALL SELECT NULL, now(), ${extra}`;
const insertBatch = perTable("insert", (tasks) => batchText(tasks, "NULL"));
/* In a caller's transaction the extra row also carries the transaction's id, for the commit watcher. */
const insertBatchXid = perTable("insert_xid", (tasks) => batchText(tasks, "to_jsonb(pg_current_xact_id()::text)"));

/* One task goes as plain parameters: about 7% sooner (median) than the batch statement given one task. */
const oneText = (tasks: string, extra: string) => `INSERT INTO ${tasks}
     (name, args, queue, priority, timeout, max_retries, run_at, meta)
   VALUES ($1, $2::jsonb, $3, $4, $5, $6, coalesce($7::timestamptz, now() + $8::float8 * interval '1 second'),
     coalesce($9::jsonb, '{}'))
   RETURNING id, created_at, nullif(run_at, created_at) AS run_at, args${extra}`;
const insertOne = perTable("insert_one", (tasks) => oneText(tasks, ""));
const insertOneXid = perTable("insert_one_xid", (tasks) => oneText(tasks, ", pg_current_xact_id()::text AS xid"));

interface InsertedRow {
  id: string | null;
  created_at?: Date;
  run_at: Date | null;
  /** In the extra row of a batch in a caller's transaction: the transaction id (see insertBatchXid). */
  args: JsonValue[] | string | null;
  xid?: string;
}

/** What an insert did: the tasks in the order given, and the caller's transaction id when asked for. */
export interface Inserted {
  tasks: Task[];
  /** The tasks this insert created or changed (a task kept by its unique key is left out), each once. */
  changed: Task[];
  /** Of `changed`, the PENDING tasks that uniqueMode "replace" updated; null when none. */
  replaced: Set<Task> | null;
  /** The transaction's id (pg_current_xact_id) when `withXid` was asked and something was written. */
  xid: string | null;
}

/**
 * Inserts the tasks and returns them, as a read of each row would, in the order given. Tasks without a unique key
 * take the fast statements above; those with one go through insertUnique. Specs whose args add up to more than one
 * statement carries (STATEMENT_JSON_CHARS), or that need both kinds of statement, go in one transaction when `q` is
 * a pool (given a client, in whatever transaction it is in). `withXid` (a caller's transaction) also returns the
 * transaction's id.
 */
export async function writeTasks(q: Queryable, tasks: string, specs: TaskInsert[], withXid = false): Promise<Inserted> {
  let keyed = 0;
  for (const s of specs) if (s.uniqueKey !== null) keyed++;
  if (keyed === 0) {
    const chunks = chunkByArgs(specs);
    if (chunks.length === 1) return insertChunk(q, tasks, specs, withXid);
    return inTransaction(q, (c) => insertChunks(c, tasks, chunks, withXid));
  }
  if (keyed === specs.length && specs.length === 1 && !withXid) return insertUnique(q, tasks, specs);
  return inTransaction(q, (c) => insertMixed(c, tasks, specs, withXid));
}

/** writeTasks' tasks alone: what each spec ended as, in the order given. */
export async function insertTasks(q: Queryable, tasks: string, specs: TaskInsert[]): Promise<Task[]> {
  return (await writeTasks(q, tasks, specs)).tasks;
}

/** Runs `fn` in one transaction: a pool's own, or the one a given client is in. */
async function inTransaction<T>(q: Queryable, fn: (q: Queryable) => Promise<T>): Promise<T> {
  if (!(q instanceof pg.Pool)) return fn(q);
  const client = await q.connect();
  try {
    await client.query("BEGIN");
    const result = await fn(client);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

async function insertChunks(q: Queryable, tasks: string, chunks: TaskInsert[][], withXid: boolean): Promise<Inserted> {
  const inserted: Task[] = [];
  let xid: string | null = null;
  for (const chunk of chunks) {
    const r = await insertChunk(q, tasks, chunk, withXid);
    inserted.push(...r.tasks);
    xid ??= r.xid;
  }
  return { tasks: inserted, changed: inserted, replaced: null, xid };
}

/** Tasks with and without unique keys: each kind by its own statements, put back in the order given. */
async function insertMixed(q: Queryable, tasks: string, specs: TaskInsert[], withXid: boolean): Promise<Inserted> {
  const plain: TaskInsert[] = [];
  const keyed: TaskInsert[] = [];
  for (const s of specs) (s.uniqueKey === null ? plain : keyed).push(s);
  const p = plain.length > 0 ? await insertChunks(q, tasks, chunkByArgs(plain), withXid) : null;
  const k = await insertUnique(q, tasks, keyed);
  let xid = p?.xid ?? null;
  if (withXid && xid === null && k.changed.length > 0) {
    const { rows } = await q.query<{ xid: string }>({ text: "SELECT pg_current_xact_id()::text AS xid" });
    xid = rows[0]!.xid;
  }
  const ordered: Task[] = [];
  let pi = 0;
  let ki = 0;
  for (const s of specs) ordered.push(s.uniqueKey === null ? p!.tasks[pi++]! : k.tasks[ki++]!);
  return { tasks: ordered, changed: p ? [...p.tasks, ...k.changed] : k.changed, replaced: k.replaced, xid };
}

/** `specs` in order, cut where their args would exceed STATEMENT_JSON_CHARS (a larger one goes alone). */
function chunkByArgs(specs: TaskInsert[]): TaskInsert[][] {
  let total = 0;
  for (const s of specs) total += s.argsJson.length;
  if (total <= STATEMENT_JSON_CHARS) return [specs];
  const chunks: TaskInsert[][] = [];
  let chunk: TaskInsert[] = [];
  let chars = 0;
  for (const s of specs) {
    if (chunk.length > 0 && chars + s.argsJson.length > STATEMENT_JSON_CHARS) {
      chunks.push(chunk);
      chunk = [];
      chars = 0;
    }
    chunk.push(s);
    chars += s.argsJson.length;
  }
  chunks.push(chunk);
  return chunks;
}

async function insertChunk(q: Queryable, tasks: string, specs: TaskInsert[], withXid: boolean): Promise<Inserted> {
  if (specs.length === 1) {
    const s = specs[0]!;
    const { rows } = await run<InsertedRow>(q, (withXid ? insertOneXid : insertOne)(tasks), [
      s.name,
      s.argsJson,
      s.queue,
      s.priority,
      s.timeout,
      s.maxRetries,
      s.runAt,
      s.delay,
      s.metaJson,
    ]);
    const r = rows[0]!;
    const inserted = [insertedTask(s, r.id!, r.args as JsonValue[], r.created_at!, r.run_at)];
    return { tasks: inserted, changed: inserted, replaced: null, xid: r.xid ?? null };
  }
  const { rows } = await run<InsertedRow>(q, (withXid ? insertBatchXid : insertBatch)(tasks), [toRecordset(specs)]);
  let now: Date | undefined;
  let xid: string | null = null;
  const inserted: InsertedRow[] = [];
  for (const r of rows) {
    if (r.id === null) {
      now = r.run_at!;
      xid = r.args as string | null;
    } else inserted.push(r);
  }
  if (!now || inserted.length !== specs.length) {
    throw new Error(`the insert returned ${inserted.length} rows for ${specs.length} tasks`);
  }
  inserted.sort((a, b) => compareIds(a.id!, b.id!));
  const createdAt = now;
  const result = inserted.map((r, i) =>
    insertedTask(specs[i]!, r.id!, r.args as JsonValue[], new Date(createdAt.getTime()), r.run_at),
  );
  return { tasks: result, changed: result, replaced: null, xid };
}

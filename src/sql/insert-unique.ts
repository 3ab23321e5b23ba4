import { run, perTable, type Queryable } from "../db/statements.js";
import { rowToTask, TASK_COLUMNS, type Task, type TaskInsert, type TaskRow } from "../task.js";
import type { Inserted } from "./insert.js";
import { toRecordset } from "./recordset.js";

/*
 * Tasks with a unique key. The key is held by the partial unique index tasks_unique_key_idx on tasks_live (unique_key)
 * WHERE unique_key IS NOT NULL AND NOT unique_superseded (migration 0006), so two enqueues of one key can never both
 * insert, whatever process they come from. ON CONFLICT cannot infer a partition's index from the partitioned parent,
 * so these statements insert into tasks_live itself (a new task is PENDING, a live row), drawing ids from the
 * parent's identity sequence, which a direct insert into a partition does not use (Postgres 15).
 *
 * Rows are inserted in key order: two batches with the same keys in other orders would otherwise each wait for a
 * key the other holds (a deadlock). See docs/architecture.md, Unique keys.
 */
const COLUMNS = `(id, name, args, queue, priority, timeout, max_retries, run_at, meta, unique_key)`;
const rows = (tasks: string) => `SELECT nextval(pg_get_serial_sequence('${tasks}', 'id')), d.n, d.a, d.q, d.p, d.t, d.m,
            coalesce(d.r, now() + d.d * interval '1 second', now()), coalesce(d.x, '{}'), d.k
       FROM jsonb_to_recordset($1::jsonb)
         AS d(n text, a jsonb, q text, p int, t float8, m int, r timestamptz, d float8, x jsonb, k text)
      ORDER BY d.k`;
const ARBITER = `ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND NOT unique_superseded`;

/* "keep": insert where the key is free; the others are read back by holdersOf. */
const insertKeep = perTable(
  "insert_keep",
  (tasks) => `INSERT INTO ${tasks}_live ${COLUMNS} ${rows(tasks)} ${ARBITER} DO NOTHING RETURNING ${TASK_COLUMNS}`,
  { prepared: false },
);

/*
 * "replace": insert where the key is free, else update a PENDING holder (xmax is 0 only on a row this statement
 * inserted). A PROGRESS holder is locked but left unchanged, and returns nothing: supersede then hands its key on.
 */
const insertReplace = perTable(
  "insert_replace",
  (tasks) => `INSERT INTO ${tasks}_live ${COLUMNS} ${rows(tasks)} ${ARBITER}
   DO UPDATE SET args = EXCLUDED.args, run_at = EXCLUDED.run_at, priority = EXCLUDED.priority, meta = EXCLUDED.meta,
                 updated_at = now()
     WHERE ${tasks}_live.status = 'PENDING'
   RETURNING ${TASK_COLUMNS}, xmax <> 0 AS replaced`,
  { prepared: false },
);

/* A running holder steps out of the unique index; it keeps its key as a label (migration 0006). */
const supersede = perTable(
  "supersede_unique",
  (tasks) => `UPDATE ${tasks}_live SET unique_superseded = true
   WHERE unique_key = ANY($1::text[]) AND NOT unique_superseded AND status = 'PROGRESS'`,
  { prepared: false },
);

const holdersOf = perTable(
  "unique_holders",
  (tasks) => `SELECT ${TASK_COLUMNS} FROM ${tasks}_live WHERE unique_key = ANY($1::text[]) AND NOT unique_superseded`,
  { prepared: false },
);

/**
 * Rounds before giving up on keys whose holders keep finishing or changing between statements: each round settles
 * every key unless another enqueuer or a worker changed its holder in the moment between two statements.
 */
const MAX_ROUNDS = 20;

/** The specs of one key in a batch, merged as if they had been enqueued one after another. */
interface KeyGroup {
  spec: TaskInsert;
  task?: Task;
}

/**
 * Enqueues tasks that all have a unique key and returns, in the order given, the task each spec ended as. Several
 * specs with one key act as if enqueued in turn: the first creates (or finds) the task, each later "replace" gives
 * it its args, runAt, priority and meta, each later "keep" returns it.
 */
export async function insertUnique(q: Queryable, tasks: string, specs: TaskInsert[]): Promise<Inserted> {
  const groups = new Map<string, KeyGroup>();
  for (const s of specs) {
    const g = groups.get(s.uniqueKey!);
    if (!g) groups.set(s.uniqueKey!, { spec: s });
    else if (s.replace) {
      const { argsJson, runAt, delay, priority, metaJson } = s;
      g.spec = { ...g.spec, argsJson, runAt, delay, priority, metaJson, replace: true };
    }
  }
  const changed: Task[] = [];
  let replaced: Set<Task> | null = null;
  const keep: KeyGroup[] = [];
  const replace: KeyGroup[] = [];
  for (const g of groups.values()) (g.spec.replace ? replace : keep).push(g);

  let open = keep;
  for (let round = 0; open.length > 0; round++) {
    if (round === MAX_ROUNDS) throw contention(open);
    const { rows: inserted } = await run<TaskRow>(q, insertKeep(tasks), [toRecordset(open.map((g) => g.spec))]);
    for (const row of inserted) {
      const task = rowToTask(row);
      groups.get(row.unique_key!)!.task = task;
      changed.push(task);
    }
    open = open.filter((g) => !g.task);
    if (open.length === 0) break;
    const { rows: held } = await run<TaskRow>(q, holdersOf(tasks), [open.map((g) => g.spec.uniqueKey)]);
    for (const row of held) groups.get(row.unique_key!)!.task = rowToTask(row);
    open = open.filter((g) => !g.task);
  }

  open = replace;
  for (let round = 0; open.length > 0; round++) {
    if (round === MAX_ROUNDS) throw contention(open);
    const { rows: written } = await run<TaskRow & { replaced: boolean }>(q, insertReplace(tasks), [
      toRecordset(open.map((g) => g.spec)),
    ]);
    for (const row of written) {
      const task = rowToTask(row);
      groups.get(row.unique_key!)!.task = task;
      changed.push(task);
      if (row.replaced) (replaced ??= new Set()).add(task);
    }
    open = open.filter((g) => !g.task);
    if (open.length > 0) await run(q, supersede(tasks), [open.map((g) => g.spec.uniqueKey)]);
  }

  return { tasks: specs.map((s) => groups.get(s.uniqueKey!)!.task!), changed, replaced, xid: null };
}

function contention(open: KeyGroup[]): Error {
  const keys = open.map((g) => JSON.stringify(g.spec.uniqueKey)).join(", ");
  return new Error(`unique keys ${keys}: their tasks kept changing while being enqueued; try again`);
}

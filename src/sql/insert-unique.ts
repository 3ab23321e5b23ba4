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
// OVERRIDING SYSTEM VALUE: from Postgres 17 a partition carries its parent's identity column (GENERATED ALWAYS),
// which refuses the id drawn above without it; before 17 the clause is accepted and changes nothing.
const COLUMNS = `(id, name, args, queue, priority, timeout, max_retries, run_at, meta, unique_key) OVERRIDING SYSTEM VALUE`;
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

/*
 * "replace" in a caller's transaction: a PENDING holder is updated by key, without the lock ON CONFLICT DO UPDATE
 * takes on a running holder, which would last until the caller commits (see insertUnique).
 */
const updatePending = perTable(
  "update_pending_unique",
  (tasks) => `UPDATE ${tasks}_live
      SET args = d.a, run_at = coalesce(d.r, now() + d.d * interval '1 second', now()), priority = d.p,
          meta = coalesce(d.x, '{}'), updated_at = now()
     FROM jsonb_to_recordset($1::jsonb) AS d(a jsonb, p int, r timestamptz, d float8, x jsonb, k text)
    WHERE unique_key = d.k AND NOT unique_superseded AND status = 'PENDING'
   RETURNING ${TASK_COLUMNS}`,
  { prepared: false },
);

/*
 * A running holder steps out of the unique index; it keeps its key as a label (migration 0006). The holders are
 * found through the unique index and updated by primary key. "Running" is said as `status <> 'PENDING'` (in
 * tasks_live the same thing): `status = 'PROGRESS'` matches the running-task index's predicate, and whenever the
 * statistics said few tasks were running the planner walked that index, every running task, instead.
 */
const supersede = perTable(
  "supersede_unique",
  (tasks) => `UPDATE ${tasks}_live SET unique_superseded = true
   WHERE id = ANY (ARRAY(SELECT id FROM ${tasks}_live WHERE unique_key = ANY($1::text[]) AND NOT unique_superseded))
     AND status <> 'PENDING' AND NOT unique_superseded`,
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
 *
 * `outside` is given when `q` is a caller's transaction: skiplock's own pool. A running holder is then never locked
 * in the caller's transaction (its worker's outcome and heartbeat would wait for the caller's commit, and a long
 * transaction would get the task swept): it is superseded on `outside` at once, in a transaction of its own. Should
 * the caller roll back, the running task keeps running without holding its key.
 */
export async function insertUnique(
  q: Queryable,
  tasks: string,
  specs: TaskInsert[],
  outside?: Queryable,
): Promise<Inserted> {
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
    const batch = toRecordset(open.map((g) => g.spec));
    const written: (TaskRow & { replaced?: boolean })[] = [];
    if (!outside) written.push(...(await run<TaskRow & { replaced: boolean }>(q, insertReplace(tasks), [batch])).rows);
    else {
      written.push(...(await run<TaskRow>(q, insertKeep(tasks), [batch])).rows);
      const inserted = new Set(written.map((r) => r.unique_key));
      const rest = open.filter((g) => !inserted.has(g.spec.uniqueKey));
      if (rest.length > 0) {
        const updated = await run<TaskRow>(q, updatePending(tasks), [toRecordset(rest.map((g) => g.spec))]);
        for (const row of updated.rows) written.push({ ...row, replaced: true });
      }
    }
    for (const row of written) {
      const task = rowToTask(row);
      groups.get(row.unique_key!)!.task = task;
      changed.push(task);
      if (row.replaced) (replaced ??= new Set()).add(task);
    }
    open = open.filter((g) => !g.task);
    if (open.length > 0) await run(outside ?? q, supersede(tasks), [open.map((g) => g.spec.uniqueKey)]);
  }

  return { tasks: specs.map((s) => groups.get(s.uniqueKey!)!.task!), changed, replaced, xid: null };
}

function contention(open: KeyGroup[]): Error {
  const keys = open.map((g) => JSON.stringify(g.spec.uniqueKey)).join(", ");
  return new Error(`unique keys ${keys}: their tasks kept changing while being enqueued; try again`);
}

/** @internal The statements whose plans test/plans.unique.test.ts pins. */
export const uniqueKeyStatements = { supersede, holdersOf };

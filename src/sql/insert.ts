import { perTable, run, type Queryable } from "../db/store.js";
import { TASK_COLUMNS, compareIds, type TaskInsert, type TaskRow } from "../task.js";

/*
 * One statement for one task or ten thousand: the specs travel as parallel arrays and unnest() turns them back
 * into rows, so a batch costs one round trip and one plan, and the same prepared statement serves createTask and
 * createTasks. run_at is either the caller's absolute time or the database's now() plus a delay, so delays do
 * not depend on the client's clock.
 */
const insertStatement = perTable(
  "insert",
  (tasks) => `INSERT INTO ${tasks} (name, args, queue, priority, timeout, max_retries, run_at)
   SELECT d.name, d.args, d.queue, d.priority, d.timeout, d.max_retries,
          coalesce(d.run_at, now() + d.delay * interval '1 second')
     FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::int[], $5::float8[], $6::int[], $7::timestamptz[],
                 $8::float8[])
       AS d(name, args, queue, priority, timeout, max_retries, run_at, delay)
   RETURNING ${TASK_COLUMNS}`,
);

/** Inserts the tasks and returns their rows in the order given. */
export async function insertTasks(q: Queryable, tasks: string, specs: TaskInsert[]): Promise<TaskRow[]> {
  const cols: unknown[][] = [[], [], [], [], [], [], [], []];
  for (const s of specs) {
    cols[0]!.push(s.name);
    cols[1]!.push(s.argsJson);
    cols[2]!.push(s.queue);
    cols[3]!.push(s.priority);
    cols[4]!.push(s.timeout);
    cols[5]!.push(s.maxRetries);
    cols[6]!.push(s.runAt);
    cols[7]!.push(s.delay);
  }
  const { rows } = await run<TaskRow>(q, insertStatement(tasks), cols);
  // Identity values are drawn in the order unnest() yields the rows, so id order is input order.
  return rows.length > 1 ? rows.sort((a, b) => compareIds(a.id, b.id)) : rows;
}

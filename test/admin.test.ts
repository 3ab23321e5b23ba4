// retryTask, runTaskNow, deleteTask, listTasks and countTasks on real Postgres, and with Redis where a wake-up matters:
// the workers here poll only every 30 s, so a task they run within seconds was woken by the doorbell.
import { describe, expect, it, vi } from "vitest";
import {
  closeDefaultClient,
  countTasks,
  deleteTask,
  listTasks,
  retryTask,
  runTaskNow,
  InvalidOptionError,
  InvalidTaskIdError,
  TaskNotFoundError,
  TaskStateError,
  UniqueKeyConflictError,
  UnknownOptionError,
  taskContext,
  type Task,
  type TaskStatus,
} from "../src/index.js";
import { claimTasks } from "../src/sql/claim.js";
import { sweepStaleTasks } from "../src/sql/sweep.js";
import { DATABASE_URL } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";

const env = workerFixture({
  label: "admin",
  workerDefaults: { retryBackoff: { base: 0.05, max: 0.2 }, pollInterval: 30 },
  deleteTasksAfterEach: true,
});
const { startWorker, finished } = env;
const tasksTable = () => `"${env.schema}".tasks`;

interface RowSpec {
  name?: string;
  queue?: string;
  status?: TaskStatus;
  uniqueKey?: string | null;
  meta?: object;
  attempt?: number;
  retryCount?: number;
  maxRetries?: number | null;
  error?: string | null;
  cancelRequested?: boolean;
}

/** Writes task rows in any state (as a crash or an earlier life left them); returns their ids in order. */
async function insertRows(specs: RowSpec[]): Promise<string[]> {
  const ids: string[] = [];
  for (const s of specs) {
    const status = s.status ?? "PENDING";
    const final = ["COMPLETED", "FAILED", "CANCELLED"].includes(status);
    const { rows } = await env.pool.query<{ id: string }>(
      `INSERT INTO ${tasksTable()} (name, queue, status, unique_key, meta, attempt, retry_count, max_retries, error,
                                   errors, cancel_requested, worker_id, started_at, finished_at, heartbeat_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, CASE WHEN $6 > 0 THEN 'w-old' END,
               CASE WHEN $6 > 0 THEN now() END, CASE WHEN $12 THEN now() END, CASE WHEN $3 = 'PROGRESS' THEN now() END)
       RETURNING id::text AS id`,
      [
        s.name ?? "noop",
        s.queue ?? "default",
        status,
        s.uniqueKey ?? null,
        JSON.stringify(s.meta ?? {}),
        s.attempt ?? (status === "PENDING" ? 0 : 1),
        s.retryCount ?? 0,
        s.maxRetries === undefined ? 0 : s.maxRetries,
        s.error ?? (status === "FAILED" ? "Error: boom" : null),
        JSON.stringify(
          status === "FAILED"
            ? [{ type: "Error", message: "boom", stack: null, attempt: 1, workerId: "w-old", at: new Date() }]
            : [],
        ),
        s.cancelRequested ?? false,
        final,
      ],
    );
    ids.push(rows[0]!.id);
  }
  return ids;
}

async function refusal(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error("expected the call to be refused");
    },
    (err: unknown) => err,
  );
}

describe("retryTask", () => {
  it("moves a FAILED task back to PENDING, due now, its history kept, and the doorbell wakes a worker", async () => {
    let failing = true;
    await startWorker({
      tasks: {
        flaky: () => {
          if (failing) throw new Error(`attempt ${taskContext().attempt} fails`);
          return taskContext().attempt;
        },
      },
    });
    const failed = await finished(await env.client.createTask("flaky"));
    expect(failed).toMatchObject({ status: "FAILED", attempt: 1, retryCount: 0, maxRetries: 0 });
    expect(failed.error).toMatch(/attempt 1 fails/);

    failing = false;
    const before = Date.now();
    const retried = await env.client.retryTask(failed.id);
    expect(retried).toMatchObject({
      id: failed.id,
      status: "PENDING",
      attempt: 1,
      retryCount: 1,
      maxRetries: 0,
      error: failed.error,
      errors: failed.errors,
      finishedAt: null,
    });
    expect(retried.runAt.getTime()).toBeGreaterThan(failed.runAt.getTime());
    expect(retried.runAt.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    expect(retried.runAt.getTime()).toBeGreaterThanOrEqual(before - 1000);
    // (Not compared with a fresh read: the bell has rung, and the worker may have claimed it already.)

    // Polling every 30 s, the worker runs it within the wait only because the bell rang.
    const done = await finished(retried, 10);
    expect(done).toMatchObject({ status: "COMPLETED", result: 2, attempt: 2, retryCount: 1 });
  });

  it("gives a task whose retries were spent one more attempt, not its whole budget again", async () => {
    let runs = 0;
    await startWorker({
      maxRetries: 2,
      pollInterval: 0.2, // this test is about the retry budget, not the doorbell
      tasks: {
        alwaysFails: () => {
          runs++;
          throw new Error("no");
        },
      },
    });
    const failed = await finished(await env.client.createTask("alwaysFails"));
    expect(failed).toMatchObject({ status: "FAILED", attempt: 3, retryCount: 2 });
    expect(runs).toBe(3);
    const again = await finished(await env.client.retryTask(failed.id), 10);
    expect(again).toMatchObject({ status: "FAILED", attempt: 4, retryCount: 3, maxRetries: 2 });
    expect(runs).toBe(4);
  });

  it("moves a CANCELLED task back to PENDING with its retry count unchanged, and it runs", async () => {
    const task = await env.client.createTask("multiply", [6, 7], { maxRetries: 2 });
    expect((await env.client.cancelTask(task.id)).status).toBe("CANCELLED");
    const retried = await env.client.retryTask(task.id);
    expect(retried).toMatchObject({ status: "PENDING", retryCount: 0, attempt: 0, finishedAt: null });
    await startWorker({ tasks: { multiply: (a: number, b: number) => a * b } });
    expect(await finished(retried, 10)).toMatchObject({ status: "COMPLETED", result: 42, attempt: 1, retryCount: 0 });
  });

  it("counts a task cancelled while running like a failure, and clears the cancel request", async () => {
    const [id] = await insertRows([{ status: "CANCELLED", attempt: 1, retryCount: 0, cancelRequested: true }]);
    const retried = await env.client.retryTask(id!);
    expect(retried).toMatchObject({ status: "PENDING", attempt: 1, retryCount: 1, cancelRequested: false });
  });

  it("refuses a task in any other state with TaskStateError, changing nothing", async () => {
    const ids = await insertRows([{ status: "PENDING" }, { status: "PROGRESS" }, { status: "COMPLETED" }]);
    for (const [i, status] of (["PENDING", "PROGRESS", "COMPLETED"] as const).entries()) {
      const before = await env.client.getTask(ids[i]!);
      const err = await refusal(env.client.retryTask(ids[i]!));
      expect(err).toBeInstanceOf(TaskStateError);
      expect(err).toMatchObject({ code: "TASK_STATE", id: ids[i], status, expected: ["FAILED", "CANCELLED"] });
      expect((err as Error).message).toMatch(new RegExp(`cannot retry task ${ids[i]}: it is ${status}`));
      expect(await env.client.getTask(ids[i]!)).toEqual(before);
    }
  });

  it("refuses unknown and malformed ids with TaskNotFoundError and InvalidTaskIdError", async () => {
    expect(await refusal(env.client.retryTask("999999999"))).toBeInstanceOf(TaskNotFoundError);
    expect(await refusal(env.client.retryTask("abc"))).toBeInstanceOf(InvalidTaskIdError);
  });

  it("refuses a FAILED task whose unique key a newer live task holds, naming the holder; retries once it is free", async () => {
    const [old, holder] = await insertRows([
      { status: "FAILED", uniqueKey: "report:daily" },
      { status: "PENDING", uniqueKey: "report:daily" },
    ]);
    const err = await refusal(env.client.retryTask(old!));
    expect(err).toBeInstanceOf(UniqueKeyConflictError);
    expect(err).toMatchObject({ code: "UNIQUE_KEY_CONFLICT", id: old, uniqueKey: "report:daily", holderId: holder });
    expect((await env.client.getTask(old!))!.status).toBe("FAILED");

    await env.client.cancelTask(holder!);
    expect(await env.client.retryTask(old!)).toMatchObject({ status: "PENDING", uniqueKey: "report:daily" });
    // Now the retried task holds the key, and the cancelled one cannot come back beside it.
    expect(await refusal(env.client.retryTask(holder!))).toMatchObject({ holderId: old });
  });

  it("races a concurrent enqueue of the same unique key: exactly one of the two holds it, never a raw 23505", async () => {
    for (let i = 0; i < 20; i++) {
      const key = `race:${i}`;
      const [old] = await insertRows([{ status: "FAILED", uniqueKey: key }]);
      const [retry, insert] = await Promise.allSettled([
        env.client.retryTask(old!),
        env.pool.query(`INSERT INTO ${tasksTable()} (name, unique_key) VALUES ('noop', $1) RETURNING id::text`, [key]),
      ]);
      if (retry.status === "fulfilled") {
        expect(insert).toMatchObject({ status: "rejected", reason: { code: "23505" } });
      } else {
        expect(insert.status).toBe("fulfilled");
        expect(retry.reason).toBeInstanceOf(UniqueKeyConflictError);
        expect(retry.reason).toMatchObject({
          holderId: (insert as PromiseFulfilledResult<{ rows: { id: string }[] }>).value.rows[0]!.id,
        });
      }
    }
  });

  it("lets exactly one of many concurrent retries move the task; the others see it PENDING", async () => {
    const [id] = await insertRows([{ status: "FAILED", attempt: 1, retryCount: 0 }]);
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => env.client.retryTask(id!)));
    const moved = results.filter((r) => r.status === "fulfilled");
    expect(moved).toHaveLength(1);
    for (const r of results) {
      if (r.status === "rejected") expect(r.reason).toMatchObject({ code: "TASK_STATE", status: "PENDING" });
    }
    expect(await env.client.getTask(id!)).toMatchObject({ status: "PENDING", retryCount: 1 });
  });

  it("races deleteTask: the task ends either deleted or PENDING, never both or neither", async () => {
    for (let i = 0; i < 10; i++) {
      const [id] = await insertRows([{ status: "FAILED" }]);
      const [retry, del] = await Promise.allSettled([env.client.retryTask(id!), env.client.deleteTask(id!)]);
      const row = await env.client.getTask(id!);
      if (retry.status === "fulfilled") {
        expect(del).toMatchObject({ status: "rejected", reason: { code: "TASK_STATE", status: "PENDING" } });
        expect(row?.status).toBe("PENDING");
      } else {
        expect(del.status).toBe("fulfilled");
        expect(retry.reason).toBeInstanceOf(TaskNotFoundError);
        expect(row).toBeNull();
      }
    }
  });

  it("keeps the sweep's uncharged hand-back for a task retried many times", async () => {
    // Each round: claim, fail for good, retry by hand. A claim the worker never started must still go back
    // uncharged afterwards (attempt - retry_count counts only uncharged claims; see sweep.ts).
    const { pool } = env;
    const tasks = tasksTable();
    const task = await env.client.createTask("poisonless", [], { maxRetries: 0 });
    for (let round = 0; round < 8; round++) {
      const [claimed] = await claimTasks(pool, tasks, {
        queues: ["default"],
        limit: 1,
        workerId: "w",
        defaultMaxRetries: 0,
      });
      expect(claimed).toMatchObject({ id: task.id, attempt: round + 1 });
      // The worker would record this start first only for a task once handed back unstarted (attempts.ts).
      expect(claimed!.attempt - 1 > claimed!.retry_count).toBe(false);
      // What a final failure writes (finish.ts): FAILED, retry_count unchanged.
      await pool.query(
        `UPDATE ${tasks} SET status = 'FAILED', error = 'x', finished_at = now(), started_at = now() WHERE id = $1`,
        [task.id],
      );
      await env.client.retryTask(task.id);
    }
    await claimTasks(pool, tasks, { queues: ["default"], limit: 1, workerId: "w", defaultMaxRetries: 0 });
    await pool.query(`UPDATE ${tasks} SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`, [task.id]);
    const swept = await sweepStaleTasks(pool, tasks, 60);
    expect(swept).toEqual([expect.objectContaining({ id: task.id, status: "PENDING", charged: false })]);
  });
});

describe("runTaskNow", () => {
  it("makes a future PENDING task due now, and the doorbell wakes a worker for it", async () => {
    await startWorker({ tasks: { multiply: (a: number, b: number) => a * b } });
    const later = await env.client.createTask("multiply", [2, 21], { delay: 3600 });
    // Once this one ran, the worker has claimed and gone idle until its next poll, 30 s away.
    await finished(await env.client.createTask("multiply", [1, 1]));
    const now = await env.client.runTaskNow(later.id);
    expect(now).toMatchObject({ id: later.id, status: "PENDING" });
    expect(now.runAt.getTime()).toBeLessThan(later.runAt.getTime() - 3_000_000);
    expect(await finished(now, 10)).toMatchObject({ status: "COMPLETED", result: 42 });
  });

  it("races a worker's claim: the task is either made due and left PENDING, or refused as PROGRESS", async () => {
    for (let i = 0; i < 20; i++) {
      const [id] = await insertRows([{ status: "PENDING" }]);
      const [now, claim] = await Promise.allSettled([
        env.client.runTaskNow(id!),
        claimTasks(env.pool, tasksTable(), { queues: ["default"], limit: 1, workerId: "w", defaultMaxRetries: 0 }),
      ]);
      expect(claim).toMatchObject({ status: "fulfilled" });
      const claimed = (claim as PromiseFulfilledResult<{ id: string }[]>).value.map((r) => r.id);
      if (now.status === "rejected") {
        expect(now.reason).toMatchObject({ code: "TASK_STATE", status: "PROGRESS" });
        expect(claimed).toEqual([id]);
      } else {
        expect(now.value.status).toBe("PENDING");
      }
      expect((await env.client.getTask(id!))!.status).toBe(claimed.length ? "PROGRESS" : "PENDING");
      await env.pool.query(`DELETE FROM ${tasksTable()}`);
    }
  });

  it("leaves a task that is already due where it is in the queue", async () => {
    const [id] = await insertRows([{ status: "PENDING" }]);
    const before = (await env.client.getTask(id!))!;
    const after = await env.client.runTaskNow(id!);
    expect(after.runAt).toEqual(before.runAt);
  });

  it("refuses every other state with TaskStateError, and unknown ids with TaskNotFoundError", async () => {
    const ids = await insertRows([{ status: "PROGRESS" }, { status: "COMPLETED" }, { status: "CANCELLED" }]);
    for (const [i, status] of (["PROGRESS", "COMPLETED", "CANCELLED"] as const).entries()) {
      const err = await refusal(env.client.runTaskNow(ids[i]!));
      expect(err).toMatchObject({ code: "TASK_STATE", status, expected: ["PENDING"] });
    }
    expect(await refusal(env.client.runTaskNow("999999999"))).toBeInstanceOf(TaskNotFoundError);
  });
});

describe("deleteTask", () => {
  it("deletes a COMPLETED, FAILED or CANCELLED task and returns it as it was", async () => {
    const ids = await insertRows([{ status: "COMPLETED" }, { status: "FAILED" }, { status: "CANCELLED" }]);
    for (const id of ids) {
      const task = (await env.client.getTask(id))!;
      expect(await env.client.deleteTask(id)).toEqual(task);
      expect(await env.client.getTask(id)).toBeNull();
      expect(await refusal(env.client.deleteTask(id))).toBeInstanceOf(TaskNotFoundError);
    }
  });

  it("refuses a PENDING or PROGRESS task, saying to cancel it first, and keeps it", async () => {
    const ids = await insertRows([{ status: "PENDING" }, { status: "PROGRESS" }]);
    for (const [i, status] of (["PENDING", "PROGRESS"] as const).entries()) {
      const err = await refusal(env.client.deleteTask(ids[i]!));
      expect(err).toBeInstanceOf(TaskStateError);
      expect(err).toMatchObject({ status, expected: ["COMPLETED", "FAILED", "CANCELLED"] });
      expect((err as Error).message).toMatch(/cancel it first/);
      expect((await env.client.getTask(ids[i]!))!.status).toBe(status);
    }
  });
});

describe("listTasks", () => {
  /** Every page of a listing, following `next`. */
  async function allPages(options: Parameters<typeof env.client.listTasks>[0] = {}): Promise<Task[][]> {
    const pages: Task[][] = [];
    let after: string | undefined;
    for (;;) {
      const page = await env.client.listTasks({ ...options, ...(after ? { after } : {}) });
      pages.push(page.tasks);
      if (page.next === null) return pages;
      expect(page.next).toBe(page.tasks.at(-1)!.id);
      after = page.next;
    }
  }

  it("pages through every task newest first, by keyset", async () => {
    const ids = await insertRows(
      Array.from({ length: 25 }, (_, i) => ({ status: (["PENDING", "COMPLETED", "FAILED"] as const)[i % 3] })),
    );
    const pages = await allPages({ limit: 10 });
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(pages.flat().map((t) => t.id)).toEqual([...ids].reverse());
    // A page that ends exactly at the last task says there is no next one.
    expect((await env.client.listTasks({ limit: 25 })).next).toBeNull();
    expect((await env.client.listTasks()).tasks).toHaveLength(25);
  });

  it("filters by status (one or several), queue, name and top-level meta, alone and together", async () => {
    const ids = await insertRows([
      { status: "FAILED", queue: "mail", name: "send", meta: { tenant: "acme", tags: ["x"] } },
      { status: "COMPLETED", queue: "mail", name: "send", meta: { tenant: "acme" } },
      { status: "PENDING", queue: "mail", name: "render", meta: { tenant: "other" } },
      { status: "CANCELLED", queue: "default", name: "send", meta: { tenant: "acme", n: 1 } },
      { status: "PROGRESS", queue: "default", name: "render" },
      { status: "FAILED", queue: "default", name: "render", meta: { tenant: "acme" } },
    ]);
    const list = async (o: Parameters<typeof env.client.listTasks>[0]) =>
      (await env.client.listTasks(o)).tasks.map((t) => ids.indexOf(t.id));
    expect(await list({ status: "FAILED" })).toEqual([5, 0]);
    expect(await list({ status: ["FAILED", "PENDING", "PROGRESS"] })).toEqual([5, 4, 2, 0]);
    expect(await list({ status: ["CANCELLED", "CANCELLED"] })).toEqual([3]);
    expect(await list({ queue: "mail" })).toEqual([2, 1, 0]);
    expect(await list({ name: "send" })).toEqual([3, 1, 0]);
    expect(await list({ meta: { tenant: "acme" } })).toEqual([5, 3, 1, 0]);
    expect(await list({ meta: { tenant: "acme", n: 1 } })).toEqual([3]);
    expect(await list({ meta: { tags: ["x"] } })).toEqual([0]);
    expect(
      await list({ status: ["FAILED", "COMPLETED"], queue: "mail", name: "send", meta: { tenant: "acme" } }),
    ).toEqual([1, 0]);
    expect(await list({ status: "FAILED", after: ids[5] })).toEqual([0]);
    expect(await list({ queue: "nowhere" })).toEqual([]);
  });

  it("pages a filter over several statuses without repeating or skipping a task", async () => {
    const ids = await insertRows(
      Array.from({ length: 30 }, (_, i) => ({ status: (["FAILED", "COMPLETED", "CANCELLED"] as const)[i % 3] })),
    );
    const pages = await allPages({ status: ["FAILED", "CANCELLED"], limit: 7 });
    expect(pages.map((p) => p.length)).toEqual([7, 7, 6]);
    expect(pages.flat().map((t) => t.id)).toEqual(ids.filter((_, i) => i % 3 !== 1).reverse());
  });

  it("refuses bad options with typed errors", async () => {
    const bad = (o: unknown) => refusal(env.client.listTasks(o as never));
    expect(await bad({ stauts: "FAILED" })).toBeInstanceOf(UnknownOptionError);
    expect(await bad({ status: "DONE" })).toMatchObject({ code: "INVALID_OPTION", option: "status" });
    expect(await bad({ status: ["FAILED", 3] })).toBeInstanceOf(InvalidOptionError);
    expect(await bad({ limit: 0 })).toMatchObject({ option: "limit" });
    expect(await bad({ limit: 1001 })).toMatchObject({ option: "limit" });
    expect(await bad({ after: "x" })).toBeInstanceOf(InvalidTaskIdError);
    expect(await bad({ meta: ["tenant"] })).toMatchObject({ option: "meta" });
    expect(await bad({ meta: { n: 10n } })).toMatchObject({ code: "NOT_JSON" });
    expect(await bad({ queue: "bad queue" })).toMatchObject({ code: "INVALID_NAME" });
  });
});

describe("countTasks", () => {
  const statuses = (p = 0, g = 0, c = 0, f = 0, x = 0) => ({
    PENDING: p,
    PROGRESS: g,
    COMPLETED: c,
    FAILED: f,
    CANCELLED: x,
  });

  async function mixed(): Promise<void> {
    const { pool } = env;
    await pool.query(
      `INSERT INTO ${tasksTable()} (name, queue, status, finished_at)
       SELECT 'noop', q, s, CASE WHEN s IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN now() END
         FROM (VALUES ('mail', 'COMPLETED', 300), ('mail', 'FAILED', 4), ('mail', 'PENDING', 3),
                      ('default', 'COMPLETED', 100), ('default', 'CANCELLED', 2), ('default', 'PROGRESS', 1))
              AS v(q, s, n), generate_series(1, n)`,
    );
  }

  it("counts exactly per queue and status while the finished tasks are few", async () => {
    await mixed();
    expect(await env.client.countTasks()).toEqual({
      queues: { mail: statuses(3, 0, 300, 4, 0), default: statuses(0, 1, 100, 0, 2) },
      totals: statuses(3, 1, 400, 4, 2),
      exact: true,
      estimated: [],
    });
  });

  it("counts exactly when the finished partition has no statistics yet, however many rows", async () => {
    await env.pool.query(`ALTER TABLE "${env.schema}".tasks_done SET (autovacuum_enabled = false)`);
    try {
      await mixed();
      // A statistics-less partition: throw away what an earlier test's ANALYZE left.
      await env.pool.query(
        `DELETE FROM pg_catalog.pg_statistic WHERE starelid = '"${env.schema}".tasks_done'::regclass`,
      );
      await env.pool.query(
        `UPDATE pg_catalog.pg_class SET reltuples = -1, relpages = 0 WHERE oid = '"${env.schema}".tasks_done'::regclass`,
      );
      const counts = await env.client.countTasks({ exactLimit: 10 });
      expect(counts).toMatchObject({ exact: true, totals: statuses(3, 1, 400, 4, 2) });
    } finally {
      await env.pool.query(`ALTER TABLE "${env.schema}".tasks_done RESET (autovacuum_enabled)`);
    }
  });

  it("estimates COMPLETED from the planner's statistics beyond exactLimit, counting the rest exactly", async () => {
    await mixed();
    await env.pool.query(`ANALYZE "${env.schema}".tasks_done`);
    const counts = await env.client.countTasks({ exactLimit: 50 });
    expect(counts).toMatchObject({ exact: false, estimated: ["COMPLETED"] });
    const { mail, default: def } = counts.queues;
    expect(mail).toMatchObject({ PENDING: 3, FAILED: 4, CANCELLED: 0 });
    expect(def).toMatchObject({ PROGRESS: 1, FAILED: 0, CANCELLED: 2 });
    // ANALYZE read every row of this small partition, so the estimates are the counts.
    expect(mail!.COMPLETED).toBeCloseTo(300, -1);
    expect(def!.COMPLETED).toBeCloseTo(100, -1);
    // Statistics near the limit: the capped count is tried, finds more, and the estimates are used all the same.
    expect(await env.client.countTasks({ exactLimit: 300 })).toEqual(counts);
  });

  it("estimates FAILED and CANCELLED too when even those are more than exactLimit", async () => {
    await mixed();
    await env.pool.query(`ANALYZE "${env.schema}".tasks_done`);
    const counts = await env.client.countTasks({ exactLimit: 3 });
    expect(counts).toMatchObject({ exact: false, estimated: ["COMPLETED", "FAILED", "CANCELLED"] });
    expect(counts.totals.PENDING).toBe(3);
    expect(counts.totals.COMPLETED + counts.totals.FAILED + counts.totals.CANCELLED).toBeCloseTo(406, -1);
  });

  it("refuses bad options", async () => {
    expect(await refusal(env.client.countTasks({ exact: true } as never))).toBeInstanceOf(UnknownOptionError);
    expect(await refusal(env.client.countTasks({ exactLimit: -1 }))).toMatchObject({ option: "exactLimit" });
  });
});

describe("module-level functions", () => {
  it("manage tasks through the default client configured from the environment", async () => {
    vi.stubEnv("DATABASE_URL", DATABASE_URL);
    vi.stubEnv("SKIPLOCK_SCHEMA", env.schema);
    vi.stubEnv("REDIS_URL", undefined);
    try {
      const [failed, later, done] = await insertRows([
        { status: "FAILED" },
        { status: "PENDING" },
        { status: "COMPLETED" },
      ]);
      await env.pool.query(`UPDATE ${tasksTable()} SET run_at = now() + interval '1 hour' WHERE id = $1`, [later]);
      expect((await listTasks({ limit: 2 })).tasks.map((t) => t.id)).toEqual([done, later]);
      expect((await countTasks()).totals).toMatchObject({ PENDING: 1, COMPLETED: 1, FAILED: 1 });
      expect((await retryTask(failed!)).status).toBe("PENDING");
      expect((await runTaskNow(later!)).runAt.getTime()).toBeLessThan(Date.now() + 60_000);
      expect((await deleteTask(done!)).id).toBe(done);
    } finally {
      await closeDefaultClient();
      vi.unstubAllEnvs();
    }
  });
});

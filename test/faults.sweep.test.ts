// Fault injection: two stale-task sweepers racing on the rows a crash left behind. Each sweeper has its own pool,
// so the two statements really run at the same time on two backends; no cluster lock is involved (the sweep must
// be correct without it).
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NullNotifier } from "../src/notify/notifier.js";
import { completeTasks } from "../src/sql/finish.js";
import { claimTasks } from "../src/sql/claim.js";
import { insertTasks } from "../src/sql/insert.js";
import { MAX_UNCHARGED_SWEEPS, sweepStaleTasks, type SweptTask } from "../src/sql/sweep.js";
import { prepareTask } from "../src/task.js";
import { ClusterLock } from "../src/worker/lock.js";
import { Sweeper } from "../src/worker/sweeper.js";
import { faultFixture } from "./fault-fixture.js";
import { CRASHED_WORKER, DATABASE_URL, insertCrashedTasks, quiet, taskRows } from "./helpers.js";

/** Stale rows are an hour old, fresh ones seconds: a minute tells them apart however slow the machine is. */
const STALE_AFTER = 60;

/** Each test sees only its own rows in PROGRESS. */
const env = faultFixture({ label: "faults_sweep", cancelAfterEach: ["PROGRESS"] });
let tasks: string;
let pools: pg.Pool[];

beforeAll(async () => {
  tasks = `"${env.schema}".tasks`;
  pools = [1, 2].map(() => {
    const p = new pg.Pool({ connectionString: DATABASE_URL, max: 2, application_name: "faults sweeper" });
    p.on("error", () => {});
    return p;
  });
  // Open the connections now, so both sweeps start on a warm connection and overlap.
  await Promise.all(pools.map((p) => Promise.all([p.query("SELECT 1"), p.query("SELECT 1")])));
});

afterAll(async () => {
  await Promise.all((pools ?? []).map((p) => p.end()));
});

/** Sweeps in batches of `batch` until a batch comes back short, like Sweeper.sweepOnce does with 1000. */
async function sweepAll(pool: pg.Pool, batch: number): Promise<SweptTask[]> {
  const all: SweptTask[] = [];
  for (;;) {
    const rows = await sweepStaleTasks(pool, tasks, STALE_AFTER, batch);
    all.push(...rows);
    if (rows.length < batch) return all;
  }
}

/** Rows that must survive every sweep untouched: a fresh heartbeat, finished tasks, a pending one. */
async function bystanders(): Promise<string[]> {
  return [
    ...(await insertCrashedTasks(env.pool, env.schema, 3, { heartbeatAge: 0, workerId: "alive-host:1:live" })),
    ...(await insertCrashedTasks(env.pool, env.schema, 2, { status: "COMPLETED" })),
    ...(await insertCrashedTasks(env.pool, env.schema, 1, { status: "FAILED" })),
    ...(await insertCrashedTasks(env.pool, env.schema, 1, { status: "PENDING" })),
  ];
}

function expectEachOnce(swept: SweptTask[][], ids: string[]): void {
  const all = swept.flat().map((t) => t.id);
  // Counted across both sweepers, every stale row was moved exactly once.
  expect(all.length).toBe(ids.length);
  expect(new Set(all)).toEqual(new Set(ids));
}

describe("two sweepers racing on the same stale rows", () => {
  it("move each row exactly once (raw statement, small batches, 8 rounds)", async () => {
    for (let round = 0; round < 8; round++) {
      const keep = await bystanders();
      const before = await taskRows(env.pool, env.schema, keep);
      const retrying = await insertCrashedTasks(env.pool, env.schema, 150, { maxRetries: 1 });
      const exhausted = await insertCrashedTasks(env.pool, env.schema, 50, {
        maxRetries: 1,
        retryCount: 1,
        attempt: 2,
      });
      const noRetries = await insertCrashedTasks(env.pool, env.schema, 25, { maxRetries: null });
      const stale = [...retrying, ...exhausted, ...noRetries];

      const swept = await Promise.all(pools.map((p) => sweepAll(p, 16 + round)));
      expectEachOnce(swept, stale);

      const rows = await taskRows(env.pool, env.schema, stale);
      for (const id of retrying) {
        expect(rows.get(id)).toMatchObject({ status: "PENDING", retry_count: 1, attempt: 1, finished_at: null });
        expect(rows.get(id)!.error).toMatch(
          /^WorkerLostError: worker lost: no heartbeat from worker dead-host:99999:deadbeef for over 60 s/,
        );
      }
      for (const id of exhausted) {
        expect(rows.get(id)).toMatchObject({ status: "FAILED", retry_count: 1, attempt: 2 });
        expect(rows.get(id)!.finished_at).toBeInstanceOf(Date);
        expect(rows.get(id)!.error).toMatch(/^WorkerLostError: worker lost/);
      }
      for (const id of noRetries) {
        expect(rows.get(id)).toMatchObject({ status: "FAILED", retry_count: 0 });
        expect(rows.get(id)!.error).toMatch(/^WorkerLostError: worker lost/);
      }
      // What each sweeper returned agrees with the rows.
      for (const t of swept.flat()) expect(t.status).toBe(rows.get(t.id)!.status);

      expect(await taskRows(env.pool, env.schema, keep)).toEqual(before);

      // A second pair of sweeps finds nothing left to move.
      const again = await Promise.all(pools.map((p) => sweepAll(p, 16)));
      expect(again.flat()).toEqual([]);
    }
  });

  it("move each row exactly once (two Sweeper services without a cluster lock, 5 rounds)", async () => {
    const sweepers = pools.map(
      (q) =>
        new Sweeper({
          q,
          tasks,
          schema: env.schema,
          lock: new ClusterLock(undefined), // no Redis: the sweep runs unguarded, as when Redis is down
          notifier: new NullNotifier(),
          logger: quiet,
          staleAfter: STALE_AFTER,
          interval: 60,
        }),
    );
    for (let round = 0; round < 5; round++) {
      const keep = await bystanders();
      const before = await taskRows(env.pool, env.schema, keep);
      // More than one batch of 1000, so the two sweepers' batches interleave.
      const stale = await insertCrashedTasks(env.pool, env.schema, 2500, { maxRetries: 3 });
      const swept = await Promise.all(sweepers.map((s) => s.sweepOnce()));
      expect(swept.every((s) => s !== null)).toBe(true);
      expectEachOnce(swept as SweptTask[][], stale);
      const { rows } = await env.pool.query(
        `SELECT status, retry_count, count(*)::int AS n FROM ${tasks} WHERE id = ANY($1::bigint[]) GROUP BY 1, 2`,
        [stale],
      );
      expect(rows).toEqual([{ status: "PENDING", retry_count: 1, n: 2500 }]);
      expect(await taskRows(env.pool, env.schema, keep)).toEqual(before);
    }
  });

  it("a sweep racing a late completion: each row is either completed or swept, never both", async () => {
    for (let round = 0; round < 5; round++) {
      const stale = await insertCrashedTasks(env.pool, env.schema, 400, { maxRetries: 1 });
      // The crashed worker "comes back" and reports every one of them while a sweeper takes them back.
      const completion = stale.map((id) => ({ id, attempt: 1, resultJson: JSON.stringify(`late ${id}`), duration: 1 }));
      const [completed, swept] = await Promise.all([
        Promise.all([
          completeTasks(pools[0]!, tasks, CRASHED_WORKER, completion.slice(0, 200)),
          completeTasks(pools[0]!, tasks, CRASHED_WORKER, completion.slice(200)),
        ]),
        sweepAll(pools[1]!, 25),
      ]);
      // completeTasks returns the ids it could not complete (they had moved on): the rest were completed.
      const missed = new Set([...completed[0]!, ...completed[1]!]);
      const completedIds = new Set(stale.filter((id) => !missed.has(id)));
      const sweptIds = new Set(swept.map((t) => t.id));
      expect(completedIds.size + sweptIds.size).toBe(stale.length);
      for (const id of sweptIds) expect(completedIds.has(id)).toBe(false);
      const rows = await taskRows(env.pool, env.schema, stale);
      for (const id of stale) {
        const row = rows.get(id)!;
        if (completedIds.has(id))
          expect(row).toMatchObject({ status: "COMPLETED", retry_count: 0, result: `late ${id}` });
        else expect(row).toMatchObject({ status: "PENDING", retry_count: 1, result: null });
      }
    }
  });
});

describe("what a sweep does to each stale task", () => {
  it("hands a prefetched task that never started back uncharged, its error untouched", async () => {
    const [id] = await insertCrashedTasks(env.pool, env.schema, 1, { started: false, maxRetries: 0 });
    await env.pool.query(`UPDATE ${tasks} SET error = 'from an earlier attempt' WHERE id = $1`, [id]);
    const swept = await sweepAll(pools[0]!, 10);
    expect(swept).toEqual([expect.objectContaining({ id, status: "PENDING", charged: false })]);
    const row = (await taskRows(env.pool, env.schema, [id!])).get(id!)!;
    expect(row).toMatchObject({
      status: "PENDING",
      retry_count: 0,
      error: "from an earlier attempt",
      finished_at: null,
    });
  });

  it("charges a task that keeps being swept unstarted, so one that kills its worker at once still stops", async () => {
    const [id] = await insertCrashedTasks(env.pool, env.schema, 1, { started: false, maxRetries: 0 });
    for (let sweeps = 1; ; sweeps++) {
      const [t] = await sweepAll(pools[0]!, 10);
      if (t!.charged) {
        expect(sweeps).toBe(MAX_UNCHARGED_SWEEPS + 1);
        expect(t!.status).toBe("FAILED");
        break;
      }
      expect(sweeps).toBeLessThanOrEqual(MAX_UNCHARGED_SWEEPS);
      // Claimed into a buffer again by a worker that dies before starting it.
      await env.pool.query(
        `UPDATE ${tasks} SET status = 'PROGRESS', attempt = attempt + 1, heartbeat_at = now() - interval '1 hour' WHERE id = $1`,
        [id],
      );
    }
    expect((await taskRows(env.pool, env.schema, [id!])).get(id!)!.error).toMatch(/^WorkerLostError: worker lost/);
  });

  it("puts a swept task back at the head of its queue, ahead of the backlog enqueued while it ran", async () => {
    const [swept] = await insertCrashedTasks(env.pool, env.schema, 1, { queue: "head-of-line" });
    await insertTasks(
      env.pool,
      tasks,
      Array.from({ length: 500 }, () => prepareTask({ name: "recorded", queue: "head-of-line" })),
    );
    await sweepAll(pools[0]!, 10);
    const [first] = await claimTasks(pools[0]!, tasks, {
      queues: ["head-of-line"],
      limit: 1,
      workerId: "next-worker",
      defaultMaxRetries: 0,
    });
    expect(first!.id).toBe(swept);
  });
});

// Fault injection: workers killed, stopped or cut off from Postgres while their prefetch buffers are full. A task
// claimed into a buffer but never started must never be charged for its worker's end, and must never start after
// its lease may have been taken.
import { describe, expect, it } from "vitest";
import { insertTasks } from "../src/sql/insert.js";
import { prepareTask } from "../src/task.js";
import pg from "pg";
import { faultFixture } from "./fault-fixture.js";
import { DATABASE_URL, FAST_SWEEP, FlakyProxy, readLedger, waitFor, type Proc } from "./helpers.js";

const env = faultFixture({
  label: "faults_prefetch",
  workerFlags: [...FAST_SWEEP, "--poll-interval", "0.2"],
  cancelAfterEach: ["PENDING", "PROGRESS"],
});

async function enqueueSleeps(n: number, ms: number, maxRetries: number): Promise<string[]> {
  const rows = await insertTasks(
    env.pool,
    `"${env.schema}".tasks`,
    Array.from({ length: n }, () => prepareTask({ name: "sleep", args: [ms], maxRetries })),
  );
  return rows.map((r) => r.id);
}

/** Ids a worker process holds claimed with no start recorded: its prefetch buffer (and attempts just started). */
async function bufferedNow(p: Proc): Promise<string[]> {
  const { rows } = await env.pool.query<{ id: string }>(
    `SELECT id::text FROM "${env.schema}".tasks
      WHERE status = 'PROGRESS' AND started_at IS NULL AND worker_id LIKE '%:' || $1::text || ':%'`,
    [p.child.pid],
  );
  return rows.map((r) => r.id);
}

/** Ids a worker process holds in its prefetch buffer (claimed, not started), once there are at least `min`. */
async function buffered(p: Proc, min: number): Promise<string[]> {
  const ids = await waitFor(
    `at least ${min} prefetched tasks on worker ${p.child.pid}`,
    async () => {
      const ids = await bufferedNow(p);
      return ids.length >= min ? ids : null;
    },
    30_000,
    20,
  );
  return ids!;
}

/**
 * Freezes a worker process (SIGSTOP) while it holds at least `min` prefetched tasks, and returns their ids as read
 * while it is frozen. A live worker keeps starting its buffer's rows: on a loaded machine it started every row of a
 * snapshot before a signal sent next was handled.
 */
async function frozenWithBuffer(p: Proc, min: number): Promise<string[]> {
  for (let tries = 0; ; tries++) {
    await buffered(p, min);
    p.child.kill("SIGSTOP");
    const ids = await bufferedNow(p);
    if (ids.length >= min || tries === 20) return ids;
    p.child.kill("SIGCONT");
  }
}

async function allFinished(): Promise<void> {
  await waitFor(
    "every task to finish",
    async () => {
      const { rows } = await env.pool.query(
        `SELECT count(*)::int AS n FROM "${env.schema}".tasks WHERE status IN ('PENDING', 'PROGRESS')`,
      );
      return rows[0].n === 0;
    },
    60_000,
    100,
  );
}

describe("a worker killed with a full prefetch buffer (maxRetries 0)", () => {
  it("fails only tasks it was running; every prefetched task runs later, none ends FAILED without a run", async () => {
    const ids = await enqueueSleeps(2000, 3, 0);
    const a = await env.worker(["--concurrency", "4"]);
    const held = await buffered(a, 20);
    a.child.kill("SIGKILL");
    await a.exited;
    await env.worker(["--concurrency", "4"]);
    await allFinished();

    const ledger = await readLedger(env.pool, env.schema);
    const { rows } = await env.pool.query(
      `SELECT id::text, status, retry_count FROM "${env.schema}".tasks WHERE id = ANY($1::bigint[])`,
      [ids],
    );
    const failed = rows.filter((r) => r.status === "FAILED").map((r) => r.id);
    // FAILED only for what really ran on the killed worker, each with its one run in the ledger.
    for (const id of failed) expect(ledger.get(id)).toEqual([expect.objectContaining({ pid: a.child.pid })]);
    expect(rows.filter((r) => r.status !== "FAILED" && r.status !== "COMPLETED")).toEqual([]);
    // The tasks that sat in its buffer, and that it did not start before it was killed, were handed back
    // uncharged and completed.
    const ranOnA = (id: string) => (ledger.get(id) ?? []).some((r) => r.pid === a.child.pid);
    const heldRows = rows.filter((r) => held.includes(r.id) && !ranOnA(r.id));
    expect(heldRows.length).toBeGreaterThan(0);
    expect(heldRows.filter((r) => r.status !== "COMPLETED" || r.retry_count !== 0)).toEqual([]);
    // Run twice only if first run on the killed worker (running, or finished with its outcome not yet written).
    const twice = ids.filter((id) => (ledger.get(id)?.length ?? 0) > 1);
    for (const id of twice) expect(ledger.get(id)![0]!.pid).toBe(a.child.pid);
  });
});

describe("a worker stopped with SIGTERM and a full prefetch buffer", () => {
  it("hands its prefetched tasks back without an extra attempt", async () => {
    await enqueueSleeps(2000, 3, 0);
    // Four slots: the buffer holds what they start in 50 ms at the pace tasks finish (each records itself, a round
    // trip to Postgres), and two slots held fewer than 20 on a loaded machine.
    const a = await env.worker(["--concurrency", "4"]);
    const held = await frozenWithBuffer(a, 20);
    // Stopped while frozen: it can start only what its slots free up for before it handles the SIGTERM.
    a.child.kill("SIGTERM");
    a.child.kill("SIGCONT");
    expect((await a.exited).code).toBe(0);
    const ledger = await readLedger(env.pool, env.schema);
    const { rows } = await env.pool.query(
      `SELECT id::text, status, attempt, started_at FROM "${env.schema}".tasks WHERE id = ANY($1::bigint[])`,
      [held],
    );
    const neverRan = rows.filter((r) => !ledger.has(r.id));
    expect(neverRan.length).toBeGreaterThan(0);
    for (const r of neverRan) expect(r).toMatchObject({ status: "PENDING", attempt: 0, started_at: null });
  });
});

describe("a worker cut off from Postgres for longer than --stale-after", () => {
  it("starts none of its prefetched tasks once back: they were swept and run elsewhere", async () => {
    const proxy = new FlakyProxy(Number(new URL(DATABASE_URL).port || 5432), new URL(DATABASE_URL).hostname);
    await proxy.start();
    try {
      const ids = await enqueueSleeps(3000, 3, 1);
      // Every connection of this worker (its claims, outcomes, heartbeat and the tasks' own ledger writes) goes
      // through the proxy.
      const cut = await env.worker(["--concurrency", "4"], { DATABASE_URL: proxy.url(DATABASE_URL) });
      const held = await buffered(cut, 30);
      proxy.blackhole();
      // Another worker sweeps the cut-off worker's tasks and runs them.
      await env.worker(["--concurrency", "4"]);
      await waitFor(
        "the cut-off worker's prefetched tasks to be swept and taken by another worker",
        async () => {
          const { rows } = await env.pool.query(
            `SELECT count(*)::int AS n FROM "${env.schema}".tasks
            WHERE id = ANY($1::bigint[])
              AND (status = 'PENDING' OR (status = 'PROGRESS' AND worker_id LIKE '%:' || $2::text || ':%'))`,
            [held, cut.child.pid],
          );
          return rows[0].n === 0;
        },
        30_000,
        50,
      );
      const { rows: restoredAt } = await env.pool.query<{ now: Date }>("SELECT clock_timestamp() AS now");
      proxy.resetAll(); // the link is back
      await allFinished();

      // Back in touch, the cut-off worker started none of the leases it had held in its buffer: a task it had not
      // started before the link came back ran once in all (elsewhere, or here under a claim made afterwards).
      const { rows: runs } = await env.pool.query(
        `SELECT task_id::text AS id, count(*)::int AS runs,
                count(*) FILTER (WHERE pid = $2 AND at < $3)::int AS cut_before_restore
           FROM "${env.schema}".ledger WHERE task_id = ANY($1::bigint[]) GROUP BY task_id`,
        [held, cut.child.pid, restoredAt[0]!.now],
      );
      expect(runs.filter((r) => r.cut_before_restore === 0 && r.runs !== 1)).toEqual([]);
      const { rows } = await env.pool.query(`SELECT status FROM "${env.schema}".tasks WHERE id = ANY($1::bigint[])`, [
        ids,
      ]);
      expect(rows.filter((r) => r.status !== "COMPLETED")).toEqual([]);
    } finally {
      await proxy.stop();
    }
  });
});

describe("a worker killed while its claim is in flight", () => {
  it("does not charge the claimed task: no handler ever ran it", async () => {
    const [id] = await enqueueSleeps(1, 1, 0);
    // Hold the claim: it waits on this lock until the worker is dead, then commits.
    const locker = new pg.Client({ connectionString: DATABASE_URL });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE "${env.schema}".tasks_live IN ACCESS EXCLUSIVE MODE`);
      const a = await env.worker(["--concurrency", "1"]);
      await waitFor("the worker's claim to wait on the lock", async () => {
        const { rows } = await env.pool.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE application_name LIKE 'skiplock worker %' AND wait_event_type = 'Lock' AND query LIKE '%picked%'`,
        );
        return rows[0].n > 0;
      });
      a.child.kill("SIGKILL");
      await a.exited;
      await locker.query("COMMIT");
    } finally {
      await locker.end();
    }
    // The dead worker's claim goes through once the lock is gone.
    await waitFor("the dead worker's claim to commit", async () => {
      const { rows } = await env.pool.query(`SELECT status FROM "${env.schema}".tasks WHERE id = $1`, [id]);
      return rows[0].status === "PROGRESS";
    });
    await env.worker(["--concurrency", "1"]);
    await allFinished();
    const { rows } = await env.pool.query(`SELECT status, retry_count FROM "${env.schema}".tasks WHERE id = $1`, [id]);
    expect(rows[0]).toEqual({ status: "COMPLETED", retry_count: 0 });
    expect((await readLedger(env.pool, env.schema)).get(id!)).toHaveLength(1);
  });
});

// Fault injection: workers that die (kill -9), freeze (SIGSTOP past --stale-after) or keep their main thread busy.
// Real worker processes, real Postgres and Redis; every wait is a polled condition with a deadline.
import { describe, expect, it } from "vitest";
import { faultFixture } from "./fault-fixture.js";
import { FAST_SWEEP, readLedger, statusCounts, stopProc, taskRows, waitFor, type Proc } from "./helpers.js";

/** Each test starts with no worker running and an empty queue. */
const env = faultFixture({
  label: "faults_crash",
  workerFlags: [...FAST_SWEEP, "--poll-interval", "0.5"],
  pollInterval: 0.2,
  cancelAfterEach: ["PENDING", "PROGRESS"],
});

describe("a worker killed with SIGKILL in the middle of its tasks", () => {
  it("has exactly its in-flight tasks re-run once, by another worker, with retry_count 1", async () => {
    const a = await env.worker(["--concurrency", "4", "--retry", "1"]);
    const early = await env.client.createTasks(Array.from({ length: 10 }, (_, i) => ({ name: "recorded", args: [i] })));
    await waitFor(
      "the early tasks to complete",
      async () => (await statusCounts(env.pool, env.schema)).COMPLETED === 10,
    );

    const inflight = await env.client.createTasks(Array.from({ length: 4 }, () => ({ name: "sleep", args: [2500] })));
    const inflightIds = inflight.map((t) => t.id);
    await waitFor("4 sleep tasks running on worker A", async () => {
      const ledger = await readLedger(env.pool, env.schema);
      const rows = await taskRows(env.pool, env.schema, inflightIds);
      return inflightIds.every((id) => ledger.has(id) && rows.get(id)!.status === "PROGRESS");
    });
    // A's 4 slots are full: these stay PENDING until someone else claims them.
    const queued = await env.client.createTasks(
      Array.from({ length: 10 }, (_, i) => ({ name: "recorded", args: [100 + i] })),
    );
    for (const row of (
      await taskRows(
        env.pool,
        env.schema,
        queued.map((t) => t.id),
      )
    ).values())
      expect(row.status).toBe("PENDING");

    a.child.kill("SIGKILL");
    expect(await a.exited).toEqual({ code: null, signal: "SIGKILL" });
    for (const row of (await taskRows(env.pool, env.schema, inflightIds)).values()) {
      expect(row).toMatchObject({ status: "PROGRESS", attempt: 1 });
      expect(row.worker_id).toContain(`:${a.child.pid}:`);
    }

    const b = await env.worker(["--concurrency", "4", "--retry", "1"]);
    const all = [...early, ...inflight, ...queued].map((t) => t.id);
    await waitFor(
      "every task COMPLETED",
      async () => [...(await taskRows(env.pool, env.schema, all)).values()].every((r) => r.status === "COMPLETED"),
      30_000,
      100,
    );

    const ledger = await readLedger(env.pool, env.schema);
    const rows = await taskRows(env.pool, env.schema, all);
    for (const id of inflightIds) {
      // Once on the killed worker, once on the worker that took it back.
      expect(ledger.get(id)).toEqual([
        { task_id: id, attempt: 1, pid: a.child.pid },
        { task_id: id, attempt: 2, pid: b.child.pid },
      ]);
      // README lifecycle: the sweeper moves it back to PENDING with retryCount + 1; the claim counts the attempt.
      expect(rows.get(id)).toMatchObject({
        status: "COMPLETED",
        attempt: 2,
        retry_count: 1,
        max_retries: 1,
        result: 2500,
      });
      expect(rows.get(id)!.worker_id).toContain(`:${b.child.pid}:`);
    }
    for (const t of [...early, ...queued]) {
      expect(ledger.get(t.id)).toHaveLength(1);
      expect(rows.get(t.id)).toMatchObject({ status: "COMPLETED", attempt: 1, retry_count: 0, result: t.args[0] });
    }
    expect(ledger.size).toBe(all.length);
    expect(b.events.some((e) => e.event === "swept")).toBe(true);
    await stopProc(b);
  });
});

/** The task's row once worker `b` has completed it on its second attempt (the first was a worker that froze). */
async function completedBy(b: Proc, id: string, what: string): Promise<Record<string, any>> {
  await waitFor(what, async () => (await env.client.getTask(id))?.status === "COMPLETED", 20_000);
  const done = (await taskRows(env.pool, env.schema, [id])).get(id)!;
  expect(done).toMatchObject({ attempt: 2, retry_count: 1, result: { pid: b.child.pid, attempt: 2 } });
  expect(done.worker_id).toContain(`:${b.child.pid}:`);
  return done;
}

describe("a worker frozen (SIGSTOP) past --stale-after", () => {
  it("has its task swept and completed elsewhere, and its late completion changes nothing", async () => {
    const a = await env.worker(["--retry", "1"]);
    const t = await env.client.createTask("sleepWho", [2000]);
    await waitFor("the task running on A", async () => {
      const ledger = await readLedger(env.pool, env.schema);
      return ledger.get(t.id)?.length === 1 && (await env.client.getTask(t.id))?.status === "PROGRESS";
    });
    a.child.kill("SIGSTOP");
    try {
      // Its heartbeat stops with it.
      await waitFor(
        "A's heartbeat to go stale",
        async () =>
          (
            await env.pool.query(
              `SELECT 1 FROM "${env.schema}".tasks WHERE id = $1 AND heartbeat_at < now() - interval '1.5 seconds'`,
              [t.id],
            )
          ).rowCount === 1,
      );
      const b = await env.worker(["--retry", "1"]);
      const done = await completedBy(b, t.id, "B to complete the task");
      expect(done.result.workerId).toBe(done.worker_id);

      a.child.kill("SIGCONT");
      // A's handler resumes, returns, and its completer tries a compare-and-set on attempt 1: it must lose.
      await a.waitForEvent("outcome:discarded", (d) => d.id === t.id && d.attempt === 1, 15_000);
      const after = (await taskRows(env.pool, env.schema, [t.id])).get(t.id)!;
      expect(after).toEqual(done);

      expect((await readLedger(env.pool, env.schema)).get(t.id)).toEqual([
        { task_id: t.id, attempt: 1, pid: a.child.pid },
        { task_id: t.id, attempt: 2, pid: b.child.pid },
      ]);
      // A is alive and well after thawing: with B gone, it serves new tasks.
      await stopProc(b);
      const next = await env.client.createTasks(Array.from({ length: 6 }, (_, i) => ({ name: "recorded", args: [i] })));
      for (const n of next)
        expect((await env.client.waitForCompletion(n.id, { timeout: 15 }))?.status).toBe("COMPLETED");
      const ledger = await readLedger(env.pool, env.schema);
      for (const n of next) expect(ledger.get(n.id)).toEqual([{ task_id: n.id, attempt: 1, pid: a.child.pid }]);
    } finally {
      if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill("SIGCONT");
    }
    await stopProc(a);
  });
});

describe("a worker thawed while the task's next attempt is running elsewhere", () => {
  it("cannot complete the newer attempt: its stale result is discarded and the new attempt's result stands", async () => {
    const a = await env.worker(["--retry", "1"]);
    const t = await env.client.createTask("sleepWho", [4500]);
    await waitFor(
      "the task running on A",
      async () => (await readLedger(env.pool, env.schema)).get(t.id)?.length === 1,
    );
    a.child.kill("SIGSTOP");
    const b = await env.worker(["--retry", "1"]);
    await waitFor(
      "B to be running attempt 2",
      async () => {
        const row = (await taskRows(env.pool, env.schema, [t.id])).get(t.id)!;
        return row.status === "PROGRESS" && row.attempt === 2 && String(row.worker_id).includes(`:${b.child.pid}:`);
      },
      20_000,
    );
    // A wakes up with its attempt still running; it finishes it while B is still on attempt 2.
    a.child.kill("SIGCONT");
    await a.waitForEvent("outcome:discarded", (d) => d.id === t.id && d.attempt === 1, 15_000);
    const during = (await taskRows(env.pool, env.schema, [t.id])).get(t.id)!;
    expect(during).toMatchObject({ status: "PROGRESS", attempt: 2, result: null, finished_at: null });
    expect(during.worker_id).toContain(`:${b.child.pid}:`);
    // A's heartbeat thread is beating again, but only for A's own rows: B's attempt is not A's to keep alive.
    await completedBy(b, t.id, "B to complete attempt 2");
    expect(b.events.filter((e) => e.event === "outcome:discarded")).toEqual([]);
    expect((await readLedger(env.pool, env.schema)).get(t.id)!.map((r) => [r.attempt, r.pid])).toEqual([
      [1, a.child.pid],
      [2, b.child.pid],
    ]);
  });
});

describe("a CPU-bound inline task longer than --stale-after", () => {
  it("is not swept: its heartbeat comes from a thread of its own", async () => {
    const a = await env.worker([]);
    // Claims nothing (its queue stays empty), but sweeps every ~0.75 s: it would take the task back if it looked stale.
    const sweeper = await env.worker(["--queue", "sweeper-only"]);
    const t = await env.client.createTask("spin", [4000], { maxRetries: 1 });
    const startedAt: Date = await waitFor("the task to start", async () => {
      const r = await env.pool.query(
        `SELECT started_at FROM "${env.schema}".tasks WHERE id = $1 AND status = 'PROGRESS'`,
        [t.id],
      );
      return r.rows[0]?.started_at;
    });
    // Polled on the database's clock: wait until it has spun for longer than --stale-after plus a sweep interval.
    await waitFor(
      "2.5 s of spinning",
      async () =>
        (await env.pool.query(`SELECT now() > $1::timestamptz + interval '2.5 seconds' AS past`, [startedAt])).rows[0]
          .past,
    );
    const row0 = (await taskRows(env.pool, env.schema, [t.id])).get(t.id)!;
    // Still its first attempt, on A, though A's main thread has been blocked all along; and the heartbeat is fresh.
    expect(row0).toMatchObject({ status: "PROGRESS", attempt: 1, retry_count: 0 });
    expect(row0.started_at).toEqual(startedAt);
    const age = await env.pool.query(`SELECT extract(epoch FROM now() - $1::timestamptz)::float8 AS s`, [
      row0.heartbeat_at,
    ]);
    expect(age.rows[0].s).toBeLessThan(1.5);
    await waitFor("the task to complete", async () => (await env.client.getTask(t.id))?.status === "COMPLETED", 20_000);
    expect((await readLedger(env.pool, env.schema)).get(t.id)).toEqual([
      { task_id: t.id, attempt: 1, pid: a.child.pid },
    ]);
    const row = (await taskRows(env.pool, env.schema, [t.id])).get(t.id)!;
    expect(row).toMatchObject({ status: "COMPLETED", attempt: 1, retry_count: 0, result: 4000, error: null });
    expect(row.worker_id).toContain(`:${a.child.pid}:`);
    expect(sweeper.events.filter((e) => e.event === "swept")).toEqual([]);
    expect(a.events.filter((e) => e.event === "swept" || e.event === "outcome:discarded")).toEqual([]);
  });
});

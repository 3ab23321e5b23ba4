// The control for the fault-injection suite: 2,000 tasks on 3 worker processes with no faults at all, with the same
// short heartbeat / stale-after settings the fault tests use. Every task must run exactly once.
import { describe, expect, it } from "vitest";
import { faultFixture } from "./fault-fixture.js";
import { FAST_SWEEP, statusCounts, waitFor } from "./helpers.js";

const TOTAL = 2000;

const env = faultFixture({ label: "faults_load", workerFlags: FAST_SWEEP });

describe("2,000 tasks on 3 worker processes, no faults", () => {
  it("runs each exactly once and leaves nothing in PROGRESS", async () => {
    // Half is waiting when the workers start; the other half arrives in batches while they run.
    // Two queues: one worker claims from "default" alone, two from both (the one-queue and the several-queue claim
    // statements, racing on the same rows).
    const queue = (i: number) => (i % 3 === 0 ? "other" : "default");
    const first = await env.client.createTasks(
      Array.from({ length: TOTAL / 2 }, (_, i) => ({ name: "recorded", args: [i], queue: queue(i) })),
    );
    const both = ["--queue", "default", "--queue", "other"];
    await Promise.all([[], both, both].map((queues) => env.worker(["--concurrency", "8", "--retry", "1", ...queues])));
    const rest = [];
    for (let b = 0; b < 10; b++) {
      rest.push(
        ...(await env.client.createTasks(
          Array.from({ length: TOTAL / 20 }, (_, i) => {
            const n = TOTAL / 2 + b * (TOTAL / 20) + i;
            return { name: "recorded", args: [n], queue: queue(n) };
          }),
        )),
      );
    }
    const all = [...first, ...rest];
    expect(all).toHaveLength(TOTAL);

    await waitFor(
      "every task to complete",
      async () => (await statusCounts(env.pool, env.schema)).COMPLETED === TOTAL,
      90_000,
      200,
    );
    expect(await statusCounts(env.pool, env.schema)).toEqual({ COMPLETED: TOTAL });

    const { rows: runs } = await env.pool.query(
      `SELECT count(*)::int AS executions, count(DISTINCT task_id)::int AS tasks, max(n)::int AS most
         FROM (SELECT task_id, count(*) OVER (PARTITION BY task_id) AS n FROM "${env.schema}".ledger) l`,
    );
    expect(runs[0]).toEqual({ executions: TOTAL, tasks: TOTAL, most: 1 });
    const { rows: strays } = await env.pool.query(
      `SELECT l.task_id FROM "${env.schema}".ledger l LEFT JOIN "${env.schema}".tasks t ON t.id = l.task_id WHERE t.id IS NULL`,
    );
    expect(strays).toEqual([]);
    // No attempt was lost or repeated, and every result is the task's own.
    const { rows: odd } = await env.pool.query(
      `SELECT id FROM "${env.schema}".tasks
        WHERE attempt <> 1 OR retry_count <> 0 OR error IS NOT NULL OR result IS DISTINCT FROM args->0 OR worker_id IS NULL`,
    );
    expect(odd).toEqual([]);
    // The work was shared by all three processes.
    const { rows: perPid } = await env.pool.query(
      `SELECT pid, count(*)::int AS n FROM "${env.schema}".ledger GROUP BY pid`,
    );
    expect(perPid.map((r) => r.pid).sort()).toEqual(env.workers.all.map((p) => p.child.pid).sort());
    const trouble = ["swept", "outcome:discarded", "claim:failed", "outcomes:failed", "beat:failed"];
    for (const p of env.workers.all) expect(p.events.filter((e) => trouble.includes(e.event))).toEqual([]);
  });
});

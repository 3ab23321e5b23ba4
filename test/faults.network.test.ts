// Fault injection: the network between a worker and Postgres fails mid-statement. A TCP proxy in front of Postgres
// lets the worker's claim reach the server and commit, drops the answer, then cuts the connection: the worker never
// learns that it claimed the task. The task must still run (the README: a task whose worker lost its connection is
// taken back by the sweeper), well before its timeout.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientInternals } from "../src/client.js";
import { faultFixture } from "./fault-fixture.js";
import { DATABASE_URL, FAST_SWEEP, FlakyProxy, readLedger, taskRows, waitFor } from "./helpers.js";

// The workers reach Postgres through the proxy; the client and the test's own pool do not.
const proxy = new FlakyProxy(Number(new URL(DATABASE_URL).port || 5432), new URL(DATABASE_URL).hostname);
const env = faultFixture({
  label: "faults_net",
  workerFlags: FAST_SWEEP,
  workerEnv: () => ({ DATABASE_URL: proxy.url(DATABASE_URL) }),
  pollInterval: 0.2,
});
beforeAll(() => proxy.start());
afterAll(() => proxy.stop());

describe("a claim whose answer is lost on the network", () => {
  it("does not strand the task in PROGRESS until its timeout", async () => {
    // Polls every 30 s: it claims when a wake-up arrives, and after a failed claim. Concurrency 2 with one task at a
    // time: a claim returns fewer rows than free slots, so no follow-up claim is in flight when the proxy turns bad.
    const w = await env.worker(["--poll-interval", "30", "--retry", "1", "--concurrency", "2"]);
    // Warm up, and wait for the worker's own "finished" message: its completion write has had its answer.
    const finished = new Set<string>();
    const off = clientInternals(env.client).notifier.onFinished((id) => finished.add(id));
    await clientInternals(env.client).notifier.ready();
    const warm = await env.client.createTask("recorded", ["warm-up"]);
    await waitFor("the worker's finished message for the warm-up task", () => finished.has(warm.id), 10_000);
    off();

    proxy.blackhole();
    const t = await env.client.createTask("recorded", ["lost claim"], { timeout: 60 });
    // The wake-up makes the worker claim; the claim commits, but its rows never come back.
    const claimed = await waitFor("the claim to commit on the server", async () => {
      const row = (await taskRows(env.pool, env.schema, [t.id])).get(t.id)!;
      return row.status === "PROGRESS" ? row : null;
    });
    expect(claimed!.worker_id).toContain(`:${w.child.pid}:`);
    proxy.resetAll();
    await w.waitForEvent("claim:failed");
    // The worker reconnects and goes on working…
    const after = await env.client.createTask("recorded", ["after the cut"]);
    expect((await env.client.waitForCompletion(after.id, { timeout: 15 }))?.status).toBe("COMPLETED");

    // …and the task it claimed without knowing must run too: within a few stale-after periods, not after its 60 s
    // timeout. (Its row names this worker, which is alive and heartbeating: whatever keeps the row "running" must
    // notice that no attempt is actually running it.)
    const done = await waitFor(
      "the task of the lost claim to complete",
      async () => {
        const row = (await taskRows(env.pool, env.schema, [t.id])).get(t.id)!;
        return row.status === "COMPLETED" ? row : null;
      },
      12_000,
      200,
    ).catch(async (err: Error) => {
      const row = (await taskRows(env.pool, env.schema, [t.id])).get(t.id)!;
      const age = await env.pool.query(`SELECT extract(epoch FROM now() - $1::timestamptz)::float8 AS s`, [
        row.heartbeat_at,
      ]);
      throw new Error(
        `${err.message}; the row: status ${row.status}, attempt ${row.attempt}, worker ${row.worker_id}, ` +
          `heartbeat ${age.rows[0].s.toFixed(2)} s old`,
      );
    });
    expect(done!.result).toBe("lost claim");
    expect((await readLedger(env.pool, env.schema)).get(t.id)).toHaveLength(1);
  });
});

// Fault injection: poison tasks. A handler that kills its worker process, one that never yields (thread isolation)
// and one that never settles. None of them may take the queue down with it.
import { afterEach, describe, expect, it } from "vitest";
import type { Task } from "../src/index.js";
import { faultFixture } from "./fault-fixture.js";
import { FAST_SWEEP, readLedger, superviseWorker, taskRows, waitFor, waitForCpuIdle } from "./helpers.js";

const FAST = [...FAST_SWEEP, "--poll-interval", "0.5"];

const env = faultFixture({
  label: "faults_poison",
  workerFlags: FAST,
  pollInterval: 0.2,
  cancelAfterEach: ["PENDING", "PROGRESS"],
});

// Supervisors a test started. This hook is registered after the fixture's, so it runs first: they stop before the
// fixture kills the workers and empties the queue.
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function completesOnce(ids: string[], timeoutS = 20): Promise<void> {
  for (const id of ids)
    expect((await env.client.waitForCompletion(id, { timeout: timeoutS }))?.status).toBe("COMPLETED");
  const ledger = await readLedger(env.pool, env.schema);
  for (const id of ids) expect(ledger.get(id)).toHaveLength(1);
}

/** The task once it has ended FAILED (a poison task under a supervisor takes a few worker lives to get there). */
async function failedTask(id: string): Promise<Task> {
  const failed = await waitFor(
    "the poison task to end FAILED",
    async () => {
      const t = await env.client.getTask(id);
      return t?.status === "FAILED" ? t : null;
    },
    30_000,
    100,
  );
  return failed!;
}

describe("a task that kills its worker process (process.exit in the handler)", () => {
  it("under a supervisor, is charged 1 + --retry runs (at most one more uncharged), then FAILS with 'worker lost'; other tasks complete", async () => {
    const sup = superviseWorker(env.schema, [...FAST, "--retry", "1"]);
    cleanups.push(sup.stop);
    const poison = await env.client.createTask("exitProcess");
    const others = await env.client.createTasks(
      Array.from({ length: 10 }, (_, i) => ({ name: "recorded", args: [i] })),
    );

    const final = await failedTask(poison.id);
    expect(final.error).toMatch(/^WorkerLostError: worker lost: no heartbeat from worker /);
    expect(final).toMatchObject({ retryCount: 1, maxRetries: 1 });

    // A run whose start was recorded before it killed its worker is charged. One that killed its worker before
    // (possible only on its first claim: from then on its start is recorded before it runs) is handed back
    // uncharged, as a task whose worker died before starting it would be.
    const runs = (await readLedger(env.pool, env.schema)).get(poison.id)!;
    expect([2, 3]).toContain(runs.length);
    expect(runs.map((r) => r.attempt)).toEqual(runs.map((_, i) => i + 1));
    expect(final.attempt).toBe(runs.length);
    expect(new Set(runs.map((r) => r.pid)).size).toBe(runs.length); // it took a worker down each time
    // Each worker that ran it died by its hand (exit code 3), and only those.
    const killed = sup.exits.filter((e) => e.code === 3);
    expect(killed).toHaveLength(runs.length);
    expect(sup.exits).toHaveLength(runs.length);

    await completesOnce(others.map((t) => t.id));
    // The supervisor's current worker is healthy and still serving.
    const after = await env.client.createTask("recorded", ["after"]);
    await completesOnce([after.id]);
    const rows = await taskRows(env.pool, env.schema, [after.id]);
    expect(rows.get(after.id)!.worker_id).toContain(`:${sup.procs.at(-1)!.child.pid}:`);
  });
});

describe("a task that kills its worker the moment it starts (maxRetries 0)", () => {
  it("is handed back once uncharged, then has its start recorded before it runs, and ends FAILED", async () => {
    const sup = superviseWorker(env.schema, FAST);
    cleanups.push(sup.stop);
    const poison = await env.client.createTask("exitAtOnce", [], { maxRetries: 0 });
    const final = await failedTask(poison.id);
    expect(final.error).toMatch(/^WorkerLostError: worker lost/);
    expect(final).toMatchObject({ retryCount: 0, attempt: 2 });
    expect(sup.exits.filter((e) => e.code === 3)).toHaveLength(2);
  });
});

describe("a task that calls process.exit under --isolation thread", () => {
  it("ends only its thread: the attempt fails, is retried, and the worker process lives on", async () => {
    const w = await env.worker(["--isolation", "thread", "--concurrency", "1", "--retry", "1"]);
    const poison = await env.client.createTask("exitProcess");
    const done = await env.client.waitForCompletion(poison.id, { timeout: 20 });
    expect(done).toMatchObject({ status: "FAILED", attempt: 2, retryCount: 1 });
    expect(done?.error).toMatch(/thread exited with code 3/);
    const runs = (await readLedger(env.pool, env.schema)).get(poison.id)!;
    expect(runs).toEqual([
      { task_id: poison.id, attempt: 1, pid: w.child.pid },
      { task_id: poison.id, attempt: 2, pid: w.child.pid },
    ]);
    expect(w.child.exitCode).toBeNull();
    const next = await env.client.createTasks(Array.from({ length: 3 }, (_, i) => ({ name: "recorded", args: [i] })));
    await completesOnce(next.map((t) => t.id));
  });
});

describe("an infinite loop under --isolation thread", () => {
  it("fails with a timeout, its thread is terminated, and the worker keeps serving", async () => {
    const w = await env.worker(["--isolation", "thread", "--concurrency", "1"]);
    // Warm the worker's one thread first, so the 0.5 s timeout is spent looping, not loading the tasks module (see
    // the cold-thread test below).
    await completesOnce([(await env.client.createTask("recorded", ["warm-up"])).id]);
    const loop = await env.client.createTask("loopForever", [], { timeout: 0.5, maxRetries: 0 });
    const done = await env.client.waitForCompletion(loop.id, { timeout: 15 });
    expect(done?.status).toBe("FAILED");
    expect(done?.error).toMatch(/TaskTimeoutError/);
    expect(done?.duration).toBeGreaterThanOrEqual(0.5);
    expect((await readLedger(env.pool, env.schema)).get(loop.id)).toHaveLength(1);

    // The only slot was freed: other tasks run (in threads too), each once.
    const next = await env.client.createTasks(Array.from({ length: 5 }, (_, i) => ({ name: "recorded", args: [i] })));
    await completesOnce(next.map((t) => t.id));
    // The looping thread is gone: the process no longer burns a core.
    await waitForCpuIdle(w.child.pid!, "the worker process to stop spinning (the looping thread terminated)");
    expect(w.child.exitCode).toBeNull();
  });
});

describe("a handler that never settles", () => {
  for (const isolation of ["inline", "thread"] as const) {
    it(`fails with a timeout and the worker keeps serving (--isolation ${isolation})`, async () => {
      await env.worker([...(isolation === "thread" ? ["--isolation", "thread"] : []), "--concurrency", "1"]);
      await completesOnce([(await env.client.createTask("recorded", ["warm-up"])).id]);
      const hung = await env.client.createTask("hang", [], { timeout: 0.5, maxRetries: 0 });
      const done = await env.client.waitForCompletion(hung.id, { timeout: 15 });
      expect(done?.status).toBe("FAILED");
      expect(done?.error).toMatch(/TaskTimeoutError/);
      expect((await readLedger(env.pool, env.schema)).get(hung.id)).toHaveLength(1);
      const next = await env.client.createTasks(Array.from({ length: 5 }, (_, i) => ({ name: "recorded", args: [i] })));
      await completesOnce(next.map((t) => t.id));
    });
  }

  it("is retried after its timeout like any failure, and each attempt times out (inline)", async () => {
    await env.worker(["--concurrency", "1"]);
    const hung = await env.client.createTask("hang", [], { timeout: 0.3, maxRetries: 1 });
    // The retry waits out a backoff of ~0.5-1 s.
    const done = await env.client.waitForCompletion(hung.id, { timeout: 15 });
    expect(done).toMatchObject({ status: "FAILED", retryCount: 1, attempt: 2 });
    expect(done?.error).toMatch(/TaskTimeoutError/);
    expect((await readLedger(env.pool, env.schema)).get(hung.id)!.map((r) => r.attempt)).toEqual([1, 2]);
  });
});

describe("a short timeout under --isolation thread", () => {
  // The timeout is "seconds one attempt may run" (README). Starting a task thread and importing the tasks module
  // takes ~0.4-0.6 s on this machine; that is the worker's overhead, not the task's run time.
  it("is not used up by starting a cold thread: a 2 ms task with timeout 0.3 completes", async () => {
    // Not a sweep test: a roomy --stale-after, since a task is heartbeated only until timeout + stale-after past
    // its claim, and a cold thread on a loaded 2-core machine has taken longer than the fast sweep's 1.5 s.
    await env.worker([
      "--isolation",
      "thread",
      "--concurrency",
      "1",
      "--heartbeat-interval",
      "1",
      "--stale-after",
      "10",
    ]);
    const quick = await env.client.createTask("recorded", ["quick"], { timeout: 0.3, maxRetries: 0 });
    const done = await env.client.waitForCompletion(quick.id, { timeout: 15 });
    expect(done?.error ?? null).toBeNull();
    expect(done?.status).toBe("COMPLETED");
    expect((await readLedger(env.pool, env.schema)).get(quick.id)).toHaveLength(1);
  });
});

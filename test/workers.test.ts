import { afterEach, describe, expect, it } from "vitest";
import type { WorkerInfo } from "../src/sql/workers.js";
import { waitFor, WorkerProcs } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";

const env = workerFixture({
  label: "workers",
  workerDefaults: { heartbeatInterval: 0.1, staleAfter: 1, pollInterval: 0.2 },
  deleteTasksAfterEach: true,
});
const procs = new WorkerProcs(() => env.schema);
afterEach(() => procs.killAll());

async function rowOf(id: string): Promise<WorkerInfo | undefined> {
  return (await env.client.listWorkers()).find((w) => w.id === id);
}

describe("the worker registry", () => {
  it("records a worker at start: host, pid, queues, concurrency, schedules, version", async () => {
    const worker = await env.startWorker({
      concurrency: 3,
      queues: ["default", "mail"],
      tasks: { report: () => "ok" },
      schedules: [{ name: "nightly", cron: "0 3 * * *", task: "report" }],
    });
    const row = await rowOf(worker.id);
    expect(row).toMatchObject({
      id: worker.id,
      status: "live",
      pid: process.pid,
      queues: ["default", "mail"],
      concurrency: 3,
      running: 0,
      schedules: ["nightly"],
      heartbeatInterval: 0.1,
      staleAfter: 1,
      stoppedAt: null,
    });
    expect(row!.host).not.toBe("");
    expect(row!.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("refreshes last_seen_at and the running count with the heartbeat, then marks a clean stop", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const worker = await env.startWorker({ concurrency: 2, tasks: { hold: () => gate } });
    const started = (await rowOf(worker.id))!;
    const task = await env.client.createTask("hold");
    const busy = await waitFor("the row to show the running task", async () => {
      const r = await rowOf(worker.id);
      return r && r.running === 1 && r.lastSeenAt > started.lastSeenAt ? r : undefined;
    });
    // And it keeps being refreshed while nothing else happens.
    await waitFor("another refresh", async () => (await rowOf(worker.id))!.lastSeenAt > busy!.lastSeenAt);
    release();
    await env.finished(task);
    await waitFor("the running count back to 0", async () => (await rowOf(worker.id))!.running === 0);
    await worker.stop();
    const stopped = (await rowOf(worker.id))!;
    expect(stopped.status).toBe("stopped");
    expect(stopped.stoppedAt).toBeInstanceOf(Date);
    expect(stopped.running).toBe(0);
  });

  it("shows a worker that died without stopping as lost once it is unseen for longer than its staleAfter", async () => {
    const proc = await procs.start(["--heartbeat-interval", "0.1", "--stale-after", "1"]);
    const started = await proc.waitForEvent("worker:started");
    const id = (started.data as { workerId: string }).workerId;
    expect((await rowOf(id))?.status).toBe("live");
    proc.child.kill("SIGKILL");
    await proc.exited;
    const lost = await waitFor("the worker to be lost", async () => {
      const r = await rowOf(id);
      return r?.status === "lost" ? r : undefined;
    });
    expect(lost!.stoppedAt).toBeNull();
  });

  it("prunes rows stopped or lost more than a day ago when a worker starts, and keeps recent ones", async () => {
    const insert = (id: string, seen: string, stopped: string | null) =>
      env.pool.query(
        `INSERT INTO "${env.schema}".workers (id, host, pid, queues, concurrency, version, heartbeat_interval,
           stale_after, started_at, last_seen_at, stopped_at)
         VALUES ($1, 'h', 1, '{default}', 1, '0', 5, 30, now() - $2::interval, now() - $2::interval,
           now() - $3::interval)`,
        [id, seen, stopped],
      );
    await insert("old-stopped", "2 days", "2 days");
    await insert("old-lost", "25 hours", null);
    await insert("recent-stopped", "1 hour", "1 hour");
    await env.startWorker({ tasks: { noop: () => null } });
    const ids = (await env.client.listWorkers()).map((w) => w.id);
    expect(ids).not.toContain("old-stopped");
    expect(ids).not.toContain("old-lost");
    expect(ids).toContain("recent-stopped");
  });
});

// Worker metrics: scraped as Prometheus text, parsed, and checked against the tasks the worker ran.
import { Counter, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { InvalidOptionError, PermanentError, Worker, type WorkerOptions } from "../src/index.js";
import { insertCrashedTasks, quiet, waitFor } from "./helpers.js";
import { nextEvent, recordEvents } from "./worker-events.js";
import { workerFixture } from "./worker-fixture.js";
import { parse, valueOf } from "./prometheus-text.js";

const f = workerFixture({
  label: "metrics",
  workerDefaults: { retryBackoff: { base: 0.01, max: 0.02 }, metrics: { cacheSeconds: 0 } },
  deleteTasksAfterEach: true,
});

let flakyCalls = 0;
let release: (() => void) | null = null;
const tasks: WorkerOptions["tasks"] = {
  ok: (x: number) => x * 2,
  boom: () => {
    throw new PermanentError("no");
  },
  flaky: () => {
    if (++flakyCalls === 1) throw new Error("first time");
    return "second time";
  },
  block: () => new Promise<void>((resolve) => (release = resolve)),
};

describe("worker.metrics()", () => {
  it("counts completed, failed and retried tasks by queue, name and outcome, with their durations", async () => {
    const worker = await f.startWorker({ tasks, queues: ["default", "mail"] });
    const ended = recordEvents(worker, ["task:completed", "task:failed"]);
    const { client } = f;
    const done = await Promise.all([
      client.createTask("ok", [1]),
      client.createTask("ok", [2], { queue: "mail" }),
      client.createTask("boom", []),
      client.createTask("flaky", [], { maxRetries: 1 }),
      client.createTask("no.such.task", []),
    ]);
    for (const t of done) await f.finished(t);
    // Outcomes are counted as their events are emitted, after the write that a waiter may see a moment sooner.
    await waitFor("every task's final event", () => ended.length === done.length);
    const m = parse(await worker.metrics());
    const processed = (labels: Record<string, string>) => valueOf(m, "skiplock_tasks_processed_total", labels);
    expect(processed({ queue: "default", name: "ok", outcome: "completed" })).toBe(1);
    expect(processed({ queue: "mail", name: "ok", outcome: "completed" })).toBe(1);
    expect(processed({ queue: "default", name: "boom", outcome: "failed" })).toBe(1);
    expect(processed({ queue: "default", name: "flaky", outcome: "retried" })).toBe(1);
    expect(processed({ queue: "default", name: "flaky", outcome: "completed" })).toBe(1);
    // A row naming a task this worker has no handler for counts under a fixed label, never its own name.
    expect(processed({ queue: "default", name: "(unknown)", outcome: "failed" })).toBe(1);
    expect(m.some((s) => s.labels.name === "no.such.task")).toBe(false);

    const count = (labels: Record<string, string>) => valueOf(m, "skiplock_task_duration_seconds_count", labels);
    expect(count({ queue: "default", name: "flaky" })).toBe(2);
    expect(count({ queue: "default", name: "ok" })).toBe(1);
    expect(valueOf(m, "skiplock_task_duration_seconds_bucket", { queue: "default", name: "ok", le: "+Inf" })).toBe(1);
    // Buckets are cumulative, and the JSON form agrees with the text.
    const buckets = m.filter((s) => s.name === "skiplock_task_duration_seconds_bucket" && s.labels.name === "flaky");
    expect(buckets.map((s) => s.value)).toEqual([...buckets.map((s) => s.value)].sort((a, b) => a - b));
    expect(buckets.at(-1)).toMatchObject({ labels: { le: "+Inf" }, value: 2 });
    const json = await worker.metricsRegistry!.getMetricsAsJSON();
    const histogram = json.find((x) => x.name === "skiplock_task_duration_seconds")!;
    expect(histogram.type).toBe("histogram");
    expect(histogram.values).toContainEqual(
      expect.objectContaining({ metricName: "skiplock_task_duration_seconds_count", value: 2 }),
    );

    expect(valueOf(m, "skiplock_tasks", { queue: "default", status: "COMPLETED" })).toBe(2);
    expect(valueOf(m, "skiplock_tasks", { queue: "default", status: "FAILED" })).toBe(2);
    expect(valueOf(m, "skiplock_tasks", { queue: "mail", status: "COMPLETED" })).toBe(1);
    expect(valueOf(m, "skiplock_tasks", { queue: "mail", status: "PENDING" })).toBe(0);
    expect(valueOf(m, "skiplock_worker_running", { queue: "default" })).toBe(0);
  });

  it("reports the running tasks and the oldest due task's age per queue", async () => {
    const worker = await f.startWorker({ tasks, queues: ["default"] });
    const { client, pool, schema } = f;
    const started = new Promise((resolve) => worker.once("task:started", resolve));
    const blocking = await client.createTask("block", []);
    await started;
    // A queue no worker claims from, its task due ten minutes ago.
    const waiting = await client.createTask("ok", [1], { queue: "unclaimed" });
    await pool.query(`UPDATE "${schema}".tasks SET run_at = now() - interval '600 seconds' WHERE id = $1`, [
      waiting.id,
    ]);
    const m = parse(await worker.metrics());
    expect(valueOf(m, "skiplock_worker_running", { queue: "default" })).toBe(1);
    expect(valueOf(m, "skiplock_queue_oldest_due_seconds", { queue: "unclaimed" })).toBeGreaterThanOrEqual(600);
    expect(valueOf(m, "skiplock_queue_oldest_due_seconds", { queue: "default" })).toBe(0);
    expect(valueOf(m, "skiplock_tasks", { queue: "default", status: "PROGRESS" })).toBe(1);
    release!();
    await f.finished(blocking);
  });

  it("counts the tasks of lost workers its sweep took back as swept", async () => {
    await insertCrashedTasks(f.pool, f.schema, 2, { name: "ok", maxRetries: 0 });
    await insertCrashedTasks(f.pool, f.schema, 1, { name: "gone.task", maxRetries: 0 });
    const worker = await f.startWorker({ tasks, heartbeatInterval: 0.1, staleAfter: 0.5 });
    await nextEvent(worker, "swept");
    const m = parse(await worker.metrics());
    expect(valueOf(m, "skiplock_tasks_processed_total", { name: "ok", outcome: "swept" })).toBe(2);
    expect(valueOf(m, "skiplock_tasks_processed_total", { name: "(unknown)", outcome: "swept" })).toBe(1);
  });

  it("caches the database gauges between scrapes", async () => {
    const worker = await f.startWorker({ tasks, metrics: { cacheSeconds: 3600 } });
    const before = parse(await worker.metrics());
    await f.client.createTask("ok", [1], { queue: "later", delay: 3600 });
    const after = parse(await worker.metrics());
    expect(valueOf(before, "skiplock_tasks", { queue: "later", status: "PENDING" })).toBeUndefined();
    expect(valueOf(after, "skiplock_tasks", { queue: "later", status: "PENDING" })).toBeUndefined();
  });

  it("gives each worker its own registry, or registers into yours", async () => {
    const a = new Worker({ databaseUrl: f.databaseUrl, schema: f.schema, tasks, logger: quiet, metrics: true });
    const b = new Worker({ databaseUrl: f.databaseUrl, schema: f.schema, tasks, logger: quiet, metrics: true });
    expect(a.metricsRegistry).not.toBe(b.metricsRegistry);
    const mine = new Registry();
    const own = new Worker({
      databaseUrl: f.databaseUrl,
      schema: f.schema,
      tasks,
      logger: quiet,
      metrics: { registry: mine },
    });
    expect(own.metricsRegistry).toBe(mine);
    expect(mine.getSingleMetric("skiplock_tasks_processed_total")).toBeDefined();
    // A second worker in the same registry would collide: refused, naming the option.
    expect(
      () =>
        new Worker({ databaseUrl: f.databaseUrl, schema: f.schema, tasks, logger: quiet, metrics: { registry: mine } }),
    ).toThrow(InvalidOptionError);
    // Your metrics and a worker's own registry, served together.
    const yours = new Registry();
    new Counter({ name: "app_requests_total", help: "requests", registers: [yours] }).inc();
    const text = await Registry.merge([a.metricsRegistry!, yours]).metrics();
    expect(valueOf(parse(text), "app_requests_total")).toBe(1);
    expect(text).toMatch(/^# TYPE skiplock_task_duration_seconds histogram$/m);
    for (const w of [a, b, own]) await w.stop();
  });

  it("without metrics (the default), adds no listener and refuses metrics() clearly", async () => {
    for (const metrics of [undefined, false]) {
      const worker = new Worker({ databaseUrl: f.databaseUrl, schema: f.schema, tasks, logger: quiet, metrics });
      expect(worker.metricsRegistry).toBeNull();
      await expect(worker.metrics()).rejects.toThrow(InvalidOptionError);
      expect(worker.listenerCount("task:completed")).toBe(0);
      await worker.stop();
    }
  });

  it("refuses bad metrics options, naming them", () => {
    const make = (metrics: unknown) =>
      new Worker({ databaseUrl: f.databaseUrl, schema: f.schema, tasks, logger: quiet, metrics: metrics as never });
    expect(() => make({ registry: {} })).toThrow(/metrics\.registry/);
    expect(() => make({ cacheSeconds: -1 })).toThrow(/metrics\.cacheSeconds/);
    expect(() => make({ durationBuckets: [] })).toThrow(/metrics\.durationBuckets/);
    expect(() => make({ nope: 1 })).toThrow(InvalidOptionError);
  });
});

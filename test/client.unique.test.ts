import { describe, expect, it } from "vitest";
import { InvalidOptionError, NotJsonError, PayloadTooLargeError, type Task } from "../src/index.js";
import { DATABASE_URL, spawnProc, stopProc } from "./helpers.js";
import { schemaFixture } from "./schema-fixture.js";
import { ON_EMBEDDED, serverOnly } from "./embedded-place.js";

const env = schemaFixture({ label: "unique" });

const live = async (key: string) =>
  (
    await env.pool.query(
      `SELECT id::text, status, args, unique_superseded FROM "${env.schema}".tasks WHERE unique_key = $1 ORDER BY id`,
      [key],
    )
  ).rows;

/** Sets a task's status as a worker would have (claimed, or finished). */
const setStatus = (id: string, status: string) =>
  env.pool.query(`UPDATE "${env.schema}".tasks SET status = $2 WHERE id = $1`, [id, status]);

describe("uniqueKey, keep", () => {
  it("returns the live task, read back whole, instead of inserting", async () => {
    const a = await env.client.createTask("x", [1], { uniqueKey: "keep-1", meta: { tenant: "t1" }, priority: 3 });
    expect(a).toMatchObject({ uniqueKey: "keep-1", meta: { tenant: "t1" }, status: "PENDING" });
    const b = await env.client.createTask("x", [2], { uniqueKey: "keep-1" });
    expect(b).toEqual(a);
    expect(await env.client.getTask(a.id)).toEqual(a);
    await setStatus(a.id, "PROGRESS");
    const c = await env.client.createTask("x", [3], { uniqueKey: "keep-1", uniqueMode: "keep" });
    expect(c.id).toBe(a.id);
    expect(c.status).toBe("PROGRESS");
    expect(await live("keep-1")).toHaveLength(1);
  });

  it("frees the key once the task is final", async () => {
    for (const final of ["COMPLETED", "FAILED", "CANCELLED"]) {
      const a = await env.client.createTask("x", [], { uniqueKey: `final-${final}` });
      await setStatus(a.id, final);
      const b = await env.client.createTask("x", [], { uniqueKey: `final-${final}` });
      expect(b.id).not.toBe(a.id);
      expect(b.status).toBe("PENDING");
    }
  });

  it("holds inside one createTasks batch, duplicates included", async () => {
    const existing = await env.client.createTask("x", ["old"], { uniqueKey: "batch-old" });
    const tasks = await env.client.createTasks([
      { name: "x", args: [1], uniqueKey: "batch-a" },
      { name: "plain", args: [2] },
      { name: "x", args: [3], uniqueKey: "batch-a" },
      { name: "x", args: [4], uniqueKey: "batch-old" },
      { name: "plain", args: [5] },
    ]);
    expect(tasks.map((t) => t.args)).toEqual([[1], [2], [1], ["old"], [5]]);
    expect(tasks[2]!.id).toBe(tasks[0]!.id);
    expect(tasks[3]!.id).toBe(existing.id);
    expect(tasks[1]!.uniqueKey).toBeNull();
    expect(await live("batch-a")).toHaveLength(1);
    for (const t of tasks) expect(await env.client.getTask(t.id)).toMatchObject({ id: t.id, args: t.args });
  });

  serverOnly(ON_EMBEDDED.processes)("two processes enqueueing one key 100 times at once make one task", async () => {
    const script = "test/fixtures/enqueue-unique.js";
    const run = () =>
      spawnProc("node", [script, env.schema, "race", "100", "keep"], { DATABASE_URL, SKIPLOCK_SCHEMA: env.schema });
    const procs = [run(), run()];
    try {
      await Promise.all(procs.map((p) => p.waitForEvent("ready")));
      for (const p of procs) p.child.send("go");
      const outs = await Promise.all(
        procs.map(async (p) => {
          await p.waitForOutput(/"ids"/);
          return JSON.parse(
            p
              .output()
              .split("\n")
              .find((l) => l.includes('"ids"'))!,
          ) as { ids: string[] };
        }),
      );
      const ids = new Set(outs.flatMap((o) => o.ids));
      expect(ids.size).toBe(1);
      expect(outs.every((o) => o.ids.length === 100)).toBe(true);
      expect(await live("race")).toHaveLength(1);
    } finally {
      await Promise.all(procs.map((p) => stopProc(p)));
    }
  });
});

describe("uniqueKey, replace", () => {
  it("updates a PENDING holder's args, runAt, priority and meta (debounce)", async () => {
    const a = await env.client.createTask("x", [1], { uniqueKey: "deb", delay: 60, meta: { v: 1 } });
    const runAt = new Date(Date.now() + 3_600_000);
    const b = await env.client.createTask("x", [2], {
      uniqueKey: "deb",
      uniqueMode: "replace",
      runAt,
      priority: 7,
      meta: { v: 2 },
    });
    expect(b).toMatchObject({ id: a.id, args: [2], priority: 7, meta: { v: 2 }, status: "PENDING" });
    expect(b.runAt.getTime()).toBe(runAt.getTime());
    expect(b.updatedAt.getTime()).toBeGreaterThanOrEqual(a.updatedAt.getTime());
    expect(await env.client.getTask(a.id)).toEqual(b);
    expect(await live("deb")).toHaveLength(1);
  });

  it("tells task:enqueued listeners which tasks were replaced; a keep that finds its task tells nothing", async () => {
    const seen: [string, boolean][] = [];
    const listener = ({ task, replaced }: { task: Task; replaced: boolean }) => void seen.push([task.id, replaced]);
    env.client.on("task:enqueued", listener);
    try {
      const a = await env.client.createTask("x", [1], { uniqueKey: "ev", delay: 60 });
      await env.client.createTask("x", [2], { uniqueKey: "ev" });
      await env.client.createTask("x", [3], { uniqueKey: "ev", uniqueMode: "replace", delay: 60 });
      expect(seen).toEqual([
        [a.id, false],
        [a.id, true],
      ]);
    } finally {
      env.client.off("task:enqueued", listener);
    }
  });

  it("leaves a running holder alone and queues a new task behind it", async () => {
    const a = await env.client.createTask("x", [1], { uniqueKey: "run" });
    await setStatus(a.id, "PROGRESS");
    const b = await env.client.createTask("x", [2], { uniqueKey: "run", uniqueMode: "replace" });
    expect(b.id).not.toBe(a.id);
    expect(b).toMatchObject({ args: [2], status: "PENDING", uniqueKey: "run" });
    expect(await env.client.getTask(a.id)).toMatchObject({ args: [1], status: "PROGRESS", uniqueKey: "run" });
    // The new task holds the key now: keep returns it, replace updates it.
    expect((await env.client.createTask("x", [3], { uniqueKey: "run" })).id).toBe(b.id);
    const c = await env.client.createTask("x", [4], { uniqueKey: "run", uniqueMode: "replace" });
    expect(c).toMatchObject({ id: b.id, args: [4] });
    // The new one can be claimed and run while the old one still runs: no unique violation for a worker.
    await setStatus(b.id, "PROGRESS");
    await setStatus(a.id, "COMPLETED");
    expect((await live("run")).map((r) => r.status)).toEqual(["COMPLETED", "PROGRESS"]);
  });

  it("in a batch, later replaces of one key win and every spec gets that task", async () => {
    const tasks = await env.client.createTasks([
      { name: "x", args: [1], uniqueKey: "bk" },
      { name: "x", args: [2], uniqueKey: "bk", uniqueMode: "replace", priority: 4 },
      { name: "x", args: [3], uniqueKey: "bk" },
    ]);
    expect(new Set(tasks.map((t) => t.id)).size).toBe(1);
    expect(tasks[0]).toMatchObject({ args: [2], priority: 4 });
    expect(await live("bk")).toHaveLength(1);
  });

  serverOnly(ON_EMBEDDED.processes)("two processes replacing one key 100 times at once leave one task", async () => {
    const run = () =>
      spawnProc("node", ["test/fixtures/enqueue-unique.js", env.schema, "race-r", "100", "replace"], {
        DATABASE_URL,
        SKIPLOCK_SCHEMA: env.schema,
      });
    const procs = [run(), run()];
    try {
      await Promise.all(procs.map((p) => p.waitForEvent("ready")));
      for (const p of procs) p.child.send("go");
      await Promise.all(procs.map((p) => p.waitForOutput(/"ids"/)));
      expect(await live("race-r")).toHaveLength(1);
    } finally {
      await Promise.all(procs.map((p) => stopProc(p)));
    }
  });
});

describe("option checks", () => {
  const refused = async (options: object) =>
    env.client.createTask("x", [], options as never).then(
      (t: Task) => t,
      (e: unknown) => e,
    );

  it("refuses bad uniqueKey, uniqueMode, meta and priority before anything is written", async () => {
    const before = (await env.pool.query(`SELECT count(*)::int AS n FROM "${env.schema}".tasks`)).rows[0].n;
    expect(await refused({ uniqueKey: "" })).toMatchObject({ option: "uniqueKey" });
    expect(await refused({ uniqueKey: "k".repeat(513) })).toMatchObject({ option: "uniqueKey" });
    expect(await refused({ uniqueKey: 5 })).toBeInstanceOf(InvalidOptionError);
    expect(await refused({ uniqueKey: "a\0b" })).toMatchObject({ option: "uniqueKey" });
    expect(await refused({ uniqueMode: "replace" })).toMatchObject({ option: "uniqueMode", problem: /uniqueKey/ });
    expect(await refused({ uniqueKey: "k", uniqueMode: "merge" })).toMatchObject({ option: "uniqueMode" });
    expect(await refused({ meta: [1] })).toBeInstanceOf(NotJsonError);
    expect(await refused({ meta: { when: 1n } })).toMatchObject({ code: "NOT_JSON", path: "meta.when" });
    expect(await refused({ meta: { big: "x".repeat(70_000) } })).toBeInstanceOf(PayloadTooLargeError);
    for (const priority of [101, -101, 2 ** 31 - 1, 1.5]) {
      const err = await refused({ priority });
      expect(err).toMatchObject({ option: "priority" });
      expect((err as Error).message).toMatch(/between -100 and 100/);
    }
    const batchErr = await env.client
      .createTasks([{ name: "x" }, { name: "x", meta: { f: () => 1 } } as never])
      .catch((e: unknown) => e);
    expect(batchErr).toMatchObject({ path: "specs[1].meta.f" });
    expect((await env.pool.query(`SELECT count(*)::int AS n FROM "${env.schema}".tasks`)).rows[0].n).toBe(before);
  });

  it("accepts the ends of the priority range", async () => {
    const [lo, hi] = await env.client.createTasks([
      { name: "x", priority: -100 },
      { name: "x", priority: 100 },
    ]);
    expect([lo!.priority, hi!.priority]).toEqual([-100, 100]);
  });
});

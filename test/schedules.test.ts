// Schedules in one process: bad definitions, the tick statement under a race, pause/resume/trigger, reconciling,
// the task's context, and the DST rules (computed with the library the scheduler uses). Several processes, clocks
// and outages: schedules.processes.test.ts.
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  defineTask,
  InvalidScheduleError,
  SkiplockClient,
  ScheduleNotFoundError,
  taskContext,
  Worker,
  type Schedule,
} from "../src/index.js";
import type { WorkerEvents } from "../src/worker/events.js";
import { quoteIdent } from "../src/db/store.js";
import { nextTick, resolveSchedules } from "../src/schedule/definition.js";
import { enqueueScheduleTick } from "../src/sql/schedule-ticks.js";
import { quiet, waitFor } from "./helpers.js";

const ISOLATED = fileURLToPath(new URL("./fixtures/isolated-scheduled.js", import.meta.url));
import { workerFixture } from "./worker-fixture.js";

const tick = defineTask("tick", () => {
  const s = taskContext().schedule;
  return s ? { name: s.name, tick: s.tick.toISOString() } : null;
});
const report = defineTask("report", (kind: string, n: number) => `${kind}:${n}`, { queue: "reports", priority: 5 });
const tasks = [tick, report];

const f = workerFixture({ label: "schedules", workerDefaults: { tasks, pollInterval: 0.1 } });

/** Resolves with the first `event` of `worker` that `match` accepts, emitted from now on. */
function nextEvent<K extends keyof WorkerEvents & string>(
  worker: Worker,
  event: K,
  match: (...data: WorkerEvents[K]) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<WorkerEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    const listener = (...data: WorkerEvents[K]) => {
      if (!match(...data)) return;
      clearTimeout(timer);
      (worker.off as (e: string, l: unknown) => void)(event, listener);
      resolve(data);
    };
    (worker.on as (e: string, l: unknown) => void)(event, listener);
  });
}

async function ticksOf(name: string): Promise<{ tick: Date; n: number }[]> {
  const { rows } = await f.pool.query(
    `SELECT schedule_tick AS tick, count(*)::int AS n FROM "${f.schema}".tasks WHERE schedule_name = $1
      GROUP BY 1 ORDER BY 1`,
    [name],
  );
  return rows;
}

async function dbNow(): Promise<Date> {
  return (await f.pool.query("SELECT now() AS now")).rows[0].now;
}

describe("declaring schedules", () => {
  const bad: [string, Schedule[], string, RegExp][] = [
    [
      "a bad cron",
      [{ name: "b", cron: "61 * * * *", task: "tick" }],
      "cron",
      /invalid schedule "b": cron "61 \* \* \* \*" is not valid: .*minute/,
    ],
    ["a cron of 7 fields", [{ name: "b", cron: "* * * * * * *", task: "tick" }], "cron", /not valid/],
    ["a cron that never matches", [{ name: "b", cron: "0 0 30 2 *", task: "tick" }], "cron", /never matches/],
    [
      "an unknown timezone",
      [{ name: "b", cron: "* * * * *", timezone: "Mars/Olympus", task: "tick" }],
      "timezone",
      /"Mars\/Olympus" is not a known IANA time zone/,
    ],
    [
      "an unknown task",
      [{ name: "b", cron: "* * * * *", task: "nope" }],
      "task",
      /"nope" is not a task this worker runs/,
    ],
    [
      "a duplicate name",
      [
        { name: "b", cron: "* * * * *", task: "tick" },
        { name: "b", cron: "0 * * * *", task: "tick" },
      ],
      "name",
      /invalid schedule "b": name is declared twice/,
    ],
    [
      "an unknown option",
      [{ name: "b", cron: "* * * * *", task: "tick", retries: 3 } as Schedule],
      "retries",
      /did you mean maxRetries/,
    ],
    ["args JSON cannot carry", [{ name: "b", cron: "* * * * *", task: "tick", args: [10n] }], "args", /BigInt/i],
    ["a negative backfill", [{ name: "b", cron: "* * * * *", task: "tick", backfill: -1 }], "backfill", /seconds/],
    [
      "a handle from using()",
      [{ name: "b", cron: "* * * * *", task: tick.using({ priority: 9 }) } as unknown as Schedule],
      "task",
      /a handle from using\(\) is not a task definition/,
    ],
  ];
  it.each(bad)("refuses %s at start with one line, storing nothing", async (_what, schedules, field, message) => {
    const worker = new Worker({ databaseUrl: f.databaseUrl, schema: f.schema, logger: quiet, tasks, schedules });
    const err = await worker.start().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidScheduleError);
    expect(err).toMatchObject({ code: "INVALID_SCHEDULE", field });
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain("\n");
    expect((await f.pool.query(`SELECT name FROM "${f.schema}".schedules WHERE name = 'b'`)).rowCount).toBe(0);
  });

  it("checks a handle's args against its parameters", () => {
    // Compile-time checks: the lines marked fail to compile without their @ts-expect-error.
    const ok = () =>
      new Worker({ tasks, schedules: [{ name: "r", cron: "0 2 * * *", task: report, args: ["daily", 3] }] });
    const wrongType = () =>
      // @ts-expect-error -- n is a number
      new Worker({ tasks, schedules: [{ name: "r", cron: "0 2 * * *", task: report, args: ["daily", "3"] }] });
    const byName = () =>
      new Worker({ tasks, schedules: [{ name: "r", cron: "0 2 * * *", task: "report", args: [1] }] });
    expect([ok, wrongType, byName].every((fn) => typeof fn === "function")).toBe(true);
  });

  it("takes a handle's options as the default of its ticks' tasks", () => {
    const [s] = resolveSchedules([{ name: "r", cron: "0 2 * * *", task: report, args: ["daily", 3] }], () => true);
    expect(s).toMatchObject({ task: "report", queue: "reports", priority: 5, timezone: "UTC", backfill: 0 });
  });
});

describe("timezones and DST (croner's rules, as the scheduler computes ticks)", () => {
  const ticks = (cron: string, from: string, n: number) => {
    const [s] = resolveSchedules([{ name: "dst", cron, timezone: "America/New_York", task: "t" }], () => true);
    const out: string[] = [];
    for (let t = nextTick(s!, new Date(from)); t && out.length < n; t = nextTick(s!, t)) out.push(t.toISOString());
    return out;
  };

  it("runs a 02:30 daily schedule once on the spring-forward day, at 03:00 EDT (02:30 does not exist)", () => {
    expect(ticks("30 2 * * *", "2026-03-07T00:00:00Z", 3)).toEqual([
      "2026-03-07T07:30:00.000Z", // 02:30 EST
      "2026-03-08T07:00:00.000Z", // 03:00 EDT, the first valid time after the gap
      "2026-03-09T06:30:00.000Z", // 02:30 EDT
    ]);
  });

  it("runs a 01:30 daily schedule once on the fall-back day, at the first 01:30 (EDT)", () => {
    expect(ticks("30 1 * * *", "2026-10-31T00:00:00Z", 3)).toEqual([
      "2026-10-31T05:30:00.000Z", // 01:30 EDT
      "2026-11-01T05:30:00.000Z", // 01:30 EDT; the repeated 01:30 EST (06:30Z) does not run
      "2026-11-02T06:30:00.000Z", // 01:30 EST
    ]);
  });

  it("runs an interval schedule through both passes of the repeated hour", () => {
    expect(ticks("30 * * * *", "2026-11-01T05:00:00Z", 3)).toEqual([
      "2026-11-01T05:30:00.000Z", // 01:30 EDT
      "2026-11-01T06:30:00.000Z", // 01:30 EST
      "2026-11-01T07:30:00.000Z", // 02:30 EST
    ]);
  });
});

describe("one task per tick", () => {
  it("lets exactly one of many concurrent inserts of a tick enqueue it, and none an older tick after it", async () => {
    const w = await f.startWorker({ schedules: [{ name: "race", cron: "* * * * *", task: tick }] });
    await w.stop();
    const schema = quoteIdent(f.schema);
    // The row as a long-running schedule leaves it: its cursor an hour back.
    await f.pool.query(`UPDATE ${schema}.schedules SET ticks_after = now() - interval '1 hour' WHERE name = 'race'`);
    const now = await dbNow();
    const at = (minutesAgo: number) => new Date(Math.floor(now.getTime() / 60_000) * 60_000 - minutesAgo * 60_000);
    const p = { name: "race", cron: "* * * * *", timezone: "UTC", next: null };
    const first = await Promise.all(
      Array.from({ length: 8 }, () => enqueueScheduleTick(f.pool, schema, { ...p, tick: at(5) })),
    );
    expect(first.filter(Boolean)).toHaveLength(1);
    const older = await Promise.all(
      Array.from({ length: 4 }, () => enqueueScheduleTick(f.pool, schema, { ...p, tick: at(6) })),
    );
    expect(older.filter(Boolean)).toHaveLength(0);
    expect(await enqueueScheduleTick(f.pool, schema, { ...p, tick: at(4) })).not.toBeNull();
    // Not due by the database's clock: refused, whatever the caller computed.
    expect(await enqueueScheduleTick(f.pool, schema, { ...p, tick: new Date(now.getTime() + 60_000) })).toBeNull();
    expect((await ticksOf("race")).map((r) => [r.tick.toISOString(), r.n])).toEqual([
      [at(5).toISOString(), 1],
      [at(4).toISOString(), 1],
    ]);
    // Older tick keys are pruned as newer ones go in.
    const keys = await f.pool.query(`SELECT tick FROM ${schema}.schedule_ticks WHERE schedule = 'race'`);
    expect(keys.rows.map((r) => r.tick.toISOString())).toEqual([at(4).toISOString()]);
  });

  it("gives the task its schedule and tick in taskContext() and on the Task", async () => {
    const w = await f.startWorker({ schedules: [{ name: "ctx", cron: "* * * * * *", task: tick }] });
    const [{ taskId, tick: at }] = await nextEvent(w, "schedule:enqueued");
    const done = await f.finished({ id: taskId });
    expect(done.result).toEqual({ name: "ctx", tick: at.toISOString() });
    expect(done.schedule).toEqual({ name: "ctx", tick: at });
    expect(done.createdAt.getTime()).toBeGreaterThanOrEqual(at.getTime());
  });

  it("gives it to a handler isolated in a thread too", async () => {
    const w = await f.startWorker({
      tasks: undefined,
      tasksModule: ISOLATED,
      isolation: "thread",
      schedules: [{ name: "threaded", cron: "* * * * * *", task: "threaded.tick" }],
    });
    const [{ taskId, tick: at }] = await nextEvent(w, "schedule:enqueued");
    const done = await f.finished({ id: taskId });
    expect(done).toMatchObject({ status: "COMPLETED", result: { name: "threaded", tick: at.toISOString() } });
  });
});

describe("steering schedules", () => {
  it("pauses (nothing enqueued), resumes without backfilling the pause, triggers once now", async () => {
    const w = await f.startWorker({ schedules: [{ name: "steer", cron: "* * * * * *", task: tick, backfill: 60 }] });
    await nextEvent(w, "schedule:enqueued");
    const paused = await f.client.pauseSchedule("steer");
    expect(paused).toMatchObject({ name: "steer", paused: true, nextTick: null });
    const pausedAt = await dbNow();
    // Two checks after the pause by the database's clock, each past a tick: nothing was enqueued for them.
    await nextEvent(w, "schedule:checked", (e) => e.now.getTime() > pausedAt.getTime() + 2000);
    const whilePaused = (await ticksOf("steer")).filter((r) => r.tick > pausedAt);
    expect(whilePaused).toEqual([]);

    const resumed = await f.client.resumeSchedule("steer");
    expect(resumed.paused).toBe(false);
    const resumedAt = await dbNow();
    const [after] = await nextEvent(w, "schedule:enqueued");
    expect(after.backfill).toBe(false);
    expect(after.tick.getTime()).toBeGreaterThan(resumedAt.getTime() - 1000);
    // No tick of the paused period, despite backfill: 60.
    const gap = (await ticksOf("steer")).filter(
      (r) => r.tick > pausedAt && r.tick.getTime() <= resumedAt.getTime() - 1000,
    );
    expect(gap).toEqual([]);

    const triggered = await f.client.triggerSchedule("steer");
    expect(triggered).toMatchObject({ name: "tick", status: "PENDING", schedule: { name: "steer" } });
    const done = await f.finished(triggered);
    expect(done.result).toEqual({ name: "steer", tick: triggered.schedule!.tick.toISOString() });
    const listed = (await f.client.listSchedules()).find((s) => s.name === "steer");
    expect(listed).toMatchObject({ paused: false, removedAt: null, cron: "* * * * * *", task: "tick", backfill: 60 });
    expect(listed!.lastTick).not.toBeNull();

    await expect(f.client.pauseSchedule("no-such")).rejects.toBeInstanceOf(ScheduleNotFoundError);
    await expect(f.client.triggerSchedule("no-such")).rejects.toMatchObject({ code: "SCHEDULE_NOT_FOUND" });
  });

  it("a trigger goes through the client's queue allow-list and emits task:enqueued", async () => {
    await f.startWorker({ schedules: [{ name: "listed", cron: "0 0 1 1 *", task: tick }] });
    const strict = new SkiplockClient({ databaseUrl: f.databaseUrl, schema: f.schema, queues: ["elsewhere"] });
    const open = new SkiplockClient({ databaseUrl: f.databaseUrl, schema: f.schema });
    try {
      await expect(strict.triggerSchedule("listed")).rejects.toMatchObject({ code: "QUEUE_NOT_ALLOWED" });
      const enqueued: string[] = [];
      open.on("task:enqueued", ({ task }) => enqueued.push(task.id));
      const task = await open.triggerSchedule("listed");
      expect(enqueued).toEqual([task.id]);
      const { rows } = await f.pool.query(
        `SELECT count(*)::int AS n FROM "${f.schema}".tasks WHERE schedule_name = 'listed'`,
      );
      expect(rows[0].n).toBe(1); // the refused trigger wrote nothing
    } finally {
      await Promise.all([strict.close(), open.close()]);
    }
  });

  it("marks a schedule the code no longer declares removed, and a changed cron starts anew", async () => {
    const a = await f.startWorker({
      schedules: [
        { name: "keep", cron: "0 0 * * *", task: tick },
        { name: "drop", cron: "0 0 * * *", task: tick },
      ],
    });
    await a.stop();
    const before = await dbNow();
    const b = await f.startWorker({ schedules: [{ name: "keep", cron: "30 0 * * *", task: tick, backfill: 86_400 }] });
    const rows = await f.pool.query(
      `SELECT name, cron, removed_at, ticks_after, next_tick FROM "${f.schema}".schedules WHERE name IN ('keep', 'drop')
        ORDER BY name`,
    );
    const [drop, keep] = rows.rows;
    expect(drop.removed_at).not.toBeNull();
    expect(keep).toMatchObject({ cron: "30 0 * * *", removed_at: null });
    // The new cron starts from now: despite a day of backfill, yesterday's 00:30 is not enqueued.
    expect(keep.ticks_after.getTime()).toBeGreaterThanOrEqual(before.getTime());
    await waitFor(
      "the next tick stored",
      async () => (await f.client.listSchedules()).find((s) => s.name === "keep")?.nextTick,
    );
    expect(await ticksOf("keep")).toEqual([]);
    await b.stop();
    // A worker declaring no schedules leaves them as they are.
    await f.startWorker({});
    const after = await f.pool.query(`SELECT removed_at FROM "${f.schema}".schedules WHERE name = 'keep'`);
    expect(after.rows[0].removed_at).toBeNull();
  });
});

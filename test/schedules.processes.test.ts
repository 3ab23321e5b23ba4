// Schedules across real `skiplock run-worker` processes on real Postgres: exactly one task per tick with several
// processes (one with its clock 60 s ahead, one killed with SIGKILL), the backfill after all of them stopped, and the
// CLI. Time is real here: the races between processes are the point.
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SkiplockClient } from "../src/index.js";
import {
  CLI,
  DATABASE_URL,
  freshSchema,
  quiet,
  REDIS_URL,
  runCli,
  spawnProc,
  stopProc,
  waitFor,
  WorkerProcs,
  type Proc,
  type SchemaEnv,
} from "./helpers.js";

const SCHEDULED_TASKS = fileURLToPath(new URL("./fixtures/scheduled-tasks.js", import.meta.url));

let env: SchemaEnv;
let client: SkiplockClient;
const procs = new WorkerProcs(() => env.schema, ["--tasks", SCHEDULED_TASKS, "--poll-interval", "0.2"]);
const schedulesEnv = (schedules: object[]) => ({ TEST_SCHEDULES: JSON.stringify(schedules) });

beforeAll(async () => {
  env = await freshSchema("sched_procs");
  client = new SkiplockClient({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, schema: env.schema, logger: quiet });
});

afterEach(() => procs.killAll());

afterAll(async () => {
  await client.close();
  await env.drop();
});

async function dbNow(): Promise<number> {
  return (await env.pool.query("SELECT now() AS now")).rows[0].now.getTime();
}

/** Each tick enqueued for `name` (epoch ms, in order) with how many tasks it has, and whether one came early. */
async function ticksOf(name: string): Promise<{ tick: number; n: number; early: boolean }[]> {
  const { rows } = await env.pool.query(
    `SELECT schedule_tick AS tick, count(*)::int AS n, bool_or(created_at < schedule_tick) AS early
       FROM "${env.schema}".tasks WHERE schedule_name = $1 GROUP BY 1 ORDER BY 1`,
    [name],
  );
  return rows.map((r) => ({ tick: r.tick.getTime(), n: r.n, early: r.early }));
}

/** Resolves once a tick at or after `at` (epoch ms) is enqueued for `name`. */
function tickReached(name: string, at: number, timeoutMs = 20_000): Promise<unknown> {
  return waitFor(
    `a tick of ${name} at ${new Date(at).toISOString()}`,
    async () => (await ticksOf(name)).at(-1)!.tick >= at,
    timeoutMs,
    100,
  );
}

/** Every second from the first tick to the last, each once and none early. */
function expectEverySecondOnce(ticks: { tick: number; n: number; early: boolean }[]): void {
  expect(ticks.filter((t) => t.n !== 1)).toEqual([]);
  expect(ticks.filter((t) => t.early)).toEqual([]);
  const missing = [];
  for (let t = ticks[0]!.tick; t <= ticks.at(-1)!.tick; t += 1000)
    if (!ticks.some((x) => x.tick === t)) missing.push(t);
  expect(missing.map((t) => new Date(t).toISOString())).toEqual([]);
}

describe("several worker processes", () => {
  it("enqueue each tick once, with no gaps, one process's clock 60 s ahead and the others killed mid-run", async () => {
    const schedules = schedulesEnv([{ name: "every-second", cron: "* * * * * *" }]);
    const [victim, other, skewed] = await Promise.all([
      procs.start([], schedules),
      procs.start([], schedules),
      procs.start([], { ...schedules, SKIPLOCK_TEST_CLOCK_OFFSET: "60" }),
    ]);
    const started = await dbNow();
    await tickReached("every-second", started + 4000);
    victim!.child.kill("SIGKILL");
    await victim!.exited;
    const killed = await dbNow();
    await tickReached("every-second", killed + 4000);
    // Then the worker whose clock is a minute fast is alone: it must enqueue every tick itself, none early.
    other!.child.kill("SIGKILL");
    await other!.exited;
    const alone = await dbNow();
    await tickReached("every-second", alone + 3000);

    const ticks = await ticksOf("every-second");
    expect(ticks.length).toBeGreaterThanOrEqual(11);
    expectEverySecondOnce(ticks);
    const bySkewed = new Set(
      skewed!.events.filter((e) => e.event === "schedule:enqueued").map((e) => new Date(e.data.tick).getTime()),
    );
    expect(ticks.filter((t) => t.tick > alone + 1000 && !bySkewed.has(t.tick))).toEqual([]);
    // It measured its clock against the database's and slept until each tick like the others: about one check per
    // tick, not a busy loop of checks it thought were late.
    const checks = skewed!.events.filter((e) => e.event === "schedule:checked");
    expect(checks.length).toBeGreaterThan(3);
    expect(checks.length).toBeLessThan(3 * ticks.length + 10);
    expect(checks.every((e) => Math.abs(e.data.offsetMs + 60_000) < 2000)).toBe(true);
    // The tasks ran, each knowing its tick.
    const done = await env.pool.query(
      `SELECT result, schedule_tick FROM "${env.schema}".tasks WHERE schedule_name = 'every-second' AND status = 'COMPLETED'`,
    );
    expect(done.rowCount).toBeGreaterThan(0);
    expect(done.rows.every((r) => r.result.tick === r.schedule_tick.toISOString())).toBe(true);
    // The tick keys do not pile up: the latest one per schedule is kept.
    const keys = await env.pool.query(
      `SELECT count(*)::int AS n FROM "${env.schema}".schedule_ticks WHERE schedule = 'every-second'`,
    );
    expect(keys.rows[0].n).toBe(1);
  });

  it("backfills only the ticks within `backfill` seconds after every worker was stopped for 5 s, each once", async () => {
    const schedules = schedulesEnv([{ name: "backfilled", cron: "* * * * * *", backfill: 3 }]);
    await Promise.all([procs.start([], schedules), procs.start([], schedules)]);
    const started = await dbNow();
    await tickReached("backfilled", started + 2000);
    await procs.killAll();
    const lastBefore = (await ticksOf("backfilled")).at(-1)!.tick;
    // The outage: every worker gone for 5 s by the database's clock.
    await waitFor("5 s without workers", async () => (await dbNow()) >= lastBefore + 5500, 20_000, 100);

    const back = await procs.start([], schedules);
    // The first check runs before the worker reports it started: the backfill is done.
    const firstCheck = back.events.find((e) => e.event === "schedule:checked")!;
    const checkedAt = new Date(firstCheck.data.now).getTime();
    const backfilled = back.events
      .filter((e) => e.event === "schedule:enqueued" && e.data.backfill)
      .map((e) => new Date(e.data.tick).getTime());
    // Exactly the ticks within 3 s of that check, oldest first.
    const expected: number[] = [];
    for (let t = Math.floor(checkedAt / 1000) * 1000; t > checkedAt - 3000; t -= 1000) expected.unshift(t);
    expect(expected).toHaveLength(3);
    expect(backfilled).toEqual(expected);
    await tickReached("backfilled", checkedAt + 2000);

    const ticks = await ticksOf("backfilled");
    const before = ticks.filter((t) => t.tick <= lastBefore);
    const after = ticks.filter((t) => t.tick > lastBefore);
    expectEverySecondOnce(before);
    expectEverySecondOnce(after);
    // The ticks of the outage older than the backfill window were skipped.
    expect(after[0]!.tick).toBe(backfilled[0]);
    expect(after[0]!.tick - lastBefore).toBeGreaterThan(3000);
  });
});

describe("skiplock schedules", () => {
  const cliEnv = () => ({ DATABASE_URL, REDIS_URL, SKIPLOCK_SCHEMA: env.schema });

  it("lists the schedules, and pauses, resumes and triggers one", async () => {
    await procs.start([], schedulesEnv([{ name: "nightly", cron: "0 2 * * *", timezone: "Europe/Paris" }]));
    const list = await runCli(["schedules"], cliEnv());
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME +CRON +TIMEZONE +TASK +LAST TICK +NEXT TICK +STATE$/m);
    expect(list.stdout).toMatch(/^nightly +0 2 \* \* \* +Europe\/Paris +scheduled\.tick +- +\S+Z +active$/m);

    expect(await runCli(["schedules", "pause", "nightly"], cliEnv())).toMatchObject({
      code: 0,
      stdout: 'schedule "nightly" paused\n',
    });
    const json = JSON.parse((await runCli(["schedules", "--json"], cliEnv())).stdout);
    expect(json.find((s: { name: string }) => s.name === "nightly")).toMatchObject({ paused: true, nextTick: null });
    expect((await runCli(["schedules", "resume", "nightly"], cliEnv())).stdout).toBe('schedule "nightly" resumed\n');

    const trigger = await runCli(["schedules", "trigger", "nightly"], cliEnv());
    expect(trigger.code).toBe(0);
    const task = JSON.parse(trigger.stdout);
    expect(task).toMatchObject({ name: "scheduled.tick", schedule: { name: "nightly" } });
    const done = await client.waitForCompletion(task.id, { timeout: 20 });
    expect(done).toMatchObject({ status: "COMPLETED", result: { name: "nightly" } });

    const unknown = await runCli(["schedules", "pause", "nope"], cliEnv());
    expect(unknown).toMatchObject({ code: 1, stderr: 'skiplock: error: no schedule named "nope"\n' });
    const badAction = await runCli(["schedules", "stop", "nightly"], cliEnv());
    expect(badAction.code).toBe(1);
    expect(badAction.stderr).toMatch(/^skiplock: error: unknown action "stop": use pause, resume, trigger\n$/);
  });

  it("run-worker refuses a bad schedule in the tasks module with one line", async () => {
    const p: Proc = spawnProc(process.execPath, [CLI, "run-worker", "--tasks", SCHEDULED_TASKS], {
      DATABASE_URL,
      SKIPLOCK_SCHEMA: env.schema,
      ...schedulesEnv([{ name: "bad", cron: "* * * *" }]),
    });
    const exit = await p.exited;
    expect(exit.code).toBe(1);
    expect(p.output()).toMatch(/^skiplock: error: invalid schedule "bad": cron "\* \* \* \*" is not valid: .*\n$/m);
    await stopProc(p);
  });
});

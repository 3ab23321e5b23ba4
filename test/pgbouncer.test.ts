// Workers and clients through a real PgBouncer in transaction pooling mode (pool_mode = transaction, four server
// connections shared by every client of the file): enqueue and wait, a drain where each task runs exactly once,
// retries, timeouts, cancel, unique keys, schedules, purge, migrate, and a worker process killed with SIGKILL. Also
// what goes wrong without `pgbouncer: true` (failed statements, and session settings left for other clients), and
// that the option changes nothing on a direct connection.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../src/db/migrate.js";
import { resolvePgbouncer } from "../src/db/pgbouncer.js";
import {
  PoolerSessionError,
  SkiplockClient,
  taskContext,
  TaskCancelledError,
  Worker,
  type Logger,
  type Task,
} from "../src/index.js";
import {
  DATABASE_URL,
  FAST_SWEEP,
  quiet,
  readLedger,
  runCli,
  startWorkerProcess,
  stopProc,
  taskRows,
  uniqueName,
  waitFor,
  type Proc,
} from "./helpers.js";
import { PrivatePgBouncer } from "./private-pgbouncer.js";
import { missingTools } from "./system-tools.js";
import { workerFixture } from "./worker-fixture.js";

const skip = missingTools("pgbouncer");

/** A logger that keeps the warnings and errors it is given, with their fields. */
function problemLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (message: string, fields?: Record<string, unknown>) =>
    lines.push(`${message} ${JSON.stringify(fields)}`);
  return { lines, debug: () => {}, info: () => {}, warn: keep, error: keep };
}

describe.skipIf(skip)("through PgBouncer, pool_mode = transaction", () => {
  const problems = problemLogger();
  const env = workerFixture({
    label: "pgbouncer",
    workerDefaults: {
      pgbouncer: true,
      logger: problems,
      heartbeatInterval: 0.2,
      staleAfter: 2,
      pollInterval: 0.2,
      retryBackoff: { base: 0.01, max: 0.02 },
    },
  });
  const bouncer = new PrivatePgBouncer({ targetUrl: DATABASE_URL, poolSize: 4 });
  let client: SkiplockClient;
  /** A Worker of the file through PgBouncer. */
  const startWorker: typeof env.startWorker = (options) => env.startWorker({ databaseUrl: bouncer.url, ...options });
  const finished = async (task: { id: string }, timeout = 20): Promise<Task> => {
    const done = await client.waitForCompletion(task.id, { timeout });
    if (!done) throw new Error(`task ${task.id} did not finish in ${timeout} s`);
    return done;
  };

  beforeAll(async () => {
    await bouncer.start();
    client = new SkiplockClient({
      databaseUrl: bouncer.url,
      redisUrl: env.redisUrl,
      schema: env.schema,
      pgbouncer: true,
      pollInterval: 0.2,
      logger: quiet,
    });
  });
  afterAll(async () => {
    await client?.close();
    await bouncer.stop();
  });

  it("enqueues, runs and waits for a task", async () => {
    await startWorker({ tasks: { multiply: (a: number, b: number) => a * b } });
    const task = await client.createTask("multiply", [6, 7]);
    expect(await finished(task)).toMatchObject({ status: "COMPLETED", result: 42 });
    expect(await client.getTask(task.id)).toMatchObject({ status: "COMPLETED", result: 42 });
  });

  it("enqueues in client.transaction and in the caller's own transaction", async () => {
    await startWorker({ tasks: { multiply: (a: number, b: number) => a * b } });
    const inClient = await client.transaction((tx) => tx.createTask("multiply", [2, 4]));
    const own = new pg.Client({ connectionString: bouncer.url });
    await own.connect();
    let inOwn: Task;
    try {
      await own.query("BEGIN");
      inOwn = await client.createTask("multiply", [3, 4], { transaction: own });
      await own.query("COMMIT");
    } finally {
      await own.end();
    }
    expect(await finished(inClient)).toMatchObject({ status: "COMPLETED", result: 8 });
    expect(await finished(inOwn)).toMatchObject({ status: "COMPLETED", result: 12 });
  });

  it("drains 600 tasks with two workers sharing four server connections: each runs exactly once", async () => {
    const runs = new Map<string, number>();
    const tasks = {
      counted: (i: number) => {
        const { id } = taskContext();
        runs.set(id, (runs.get(id) ?? 0) + 1);
        return i;
      },
    };
    await Promise.all([startWorker({ tasks, concurrency: 8 }), startWorker({ tasks, concurrency: 8 })]);
    const created = await client.createTasks(Array.from({ length: 600 }, (_, i) => ({ name: "counted", args: [i] })));
    const done = await Promise.all(created.map((t) => finished(t, 60)));
    expect(done.every((t, i) => t.status === "COMPLETED" && t.result === i)).toBe(true);
    expect(runs.size).toBe(600);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    // (The test server runs without autovacuum, which a worker warns about.)
    expect(problems.lines.filter((l) => !l.startsWith("autovacuum is off"))).toEqual([]);
  });

  it("retries a failed attempt and times out a hung one", async () => {
    await startWorker({
      tasks: {
        flaky: () => {
          if (taskContext().attempt === 1) throw new Error("first attempt fails");
          return "ok";
        },
        hangs: () => new Promise(() => {}),
      },
    });
    const flaky = await client.createTask("flaky", [], { maxRetries: 2 });
    const hangs = await client.createTask("hangs", [], { timeout: 0.3 });
    expect(await finished(flaky)).toMatchObject({ status: "COMPLETED", result: "ok", retryCount: 1 });
    const timedOut = await finished(hangs);
    expect(timedOut.status).toBe("FAILED");
    expect(timedOut.error).toMatch(/timed out|timeout/i);
  });

  it("cancels a pending task and a running one", async () => {
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    await startWorker({
      tasks: {
        heeds: async () => {
          started();
          const { signal } = taskContext();
          await new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
        },
      },
    });
    const pending = await client.createTask("heeds", [], { delay: 3600 });
    expect(await client.cancelTask(pending.id)).toMatchObject({ status: "CANCELLED" });
    const task = await client.createTask("heeds");
    await running;
    await client.cancelTask(task.id);
    const done = await finished(task);
    expect(done).toMatchObject({ status: "CANCELLED" });
    expect(done.error).toMatch(new RegExp(`^${TaskCancelledError.name}`));
  });

  it("keeps one task per unique key", async () => {
    const a = await client.createTask("x", [1], { uniqueKey: "pgb-1", delay: 3600 });
    const b = await client.createTask("x", [2], { uniqueKey: "pgb-1" });
    expect(b.id).toBe(a.id);
    const c = await client.createTask("x", [3], { uniqueKey: "pgb-1", uniqueMode: "replace" });
    expect(c.id).toBe(a.id);
    expect(c.args).toEqual([3]);
    await client.cancelTask(a.id);
  });

  it("enqueues a schedule's ticks", async () => {
    await startWorker({
      tasks: { tick: () => "ticked" },
      schedules: [{ name: "pgb-every-second", cron: "* * * * * *", task: "tick" }],
    });
    const ticked = await waitFor(
      "a scheduled task to complete",
      async () =>
        (
          await env.pool.query<{ id: string }>(
            `SELECT id FROM "${env.schema}".tasks WHERE schedule_name = 'pgb-every-second' AND status = 'COMPLETED' LIMIT 1`,
          )
        ).rows[0],
    );
    expect(await client.getTask(ticked!.id)).toMatchObject({ status: "COMPLETED", result: "ticked" });
  });

  it("purges finished tasks", async () => {
    const before = await env.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${env.schema}".tasks WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED')`,
    );
    expect(before.rows[0]!.n).toBeGreaterThan(0);
    const r = await client.purgeTasks({ olderThanDays: 0, batchSize: 100 });
    expect(r.deleted).toBe(before.rows[0]!.n);
    const after = await env.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${env.schema}".tasks WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED')`,
    );
    expect(after.rows[0]!.n).toBe(0);
  });

  it("migrates a new schema from two processes at once, each migration applied once", async () => {
    const schema = uniqueName("pgb_migrate");
    try {
      const [a, b] = await Promise.all([
        migrate({ databaseUrl: bouncer.url, schema }),
        migrate({ databaseUrl: bouncer.url, schema }),
      ]);
      const applied = [...a.applied, ...b.applied];
      const rows = await env.pool.query<{ name: string }>(`SELECT name FROM "${schema}".migrations ORDER BY id`);
      expect(applied.sort()).toEqual(rows.rows.map((r) => r.name).sort());
      expect(new Set(applied).size).toBe(applied.length);
    } finally {
      await env.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });

  it("serves the CLI commands given --pgbouncer", async () => {
    await startWorker({ tasks: { multiply: (a: number, b: number) => a * b } });
    const flags = ["--database-url", bouncer.url, "--schema", env.schema, "--pgbouncer"];
    const migrated = await runCli(["migrate", ...flags]);
    expect(migrated).toMatchObject({ code: 0, stdout: `schema "${env.schema}" is up to date\n` });
    const enqueued = await runCli([
      "enqueue",
      "multiply",
      "[3, 5]",
      "--wait",
      "20",
      "--redis-url",
      env.redisUrl,
      ...flags,
    ]);
    expect(enqueued.code).toBe(0);
    const task = JSON.parse(enqueued.stdout) as Task;
    expect(task).toMatchObject({ status: "COMPLETED", result: 15 });
    const status = await runCli(["status", task.id, ...flags]);
    expect(JSON.parse(status.stdout)).toMatchObject({ id: task.id, status: "COMPLETED" });
    const purged = await runCli(["purge", "--days", "0", "--dry-run", ...flags]);
    expect(purged).toMatchObject({ code: 0, stdout: expect.stringMatching(/^would delete \d+ tasks/) as string });
  });

  describe("a worker process killed with SIGKILL", () => {
    const procs: Proc[] = [];
    afterAll(() => Promise.all(procs.map((p) => stopProc(p, "SIGKILL"))));
    const worker = async () => {
      const p = await startWorkerProcess(env.schema, ["--concurrency", "4", "--retry", "1", ...FAST_SWEEP], {
        DATABASE_URL: bouncer.url,
        REDIS_URL: env.redisUrl,
        SKIPLOCK_PGBOUNCER: "1",
      });
      procs.push(p);
      return p;
    };

    it("has its in-flight tasks swept and run again once by another worker", async () => {
      const a = await worker();
      const inflight = await client.createTasks(Array.from({ length: 4 }, () => ({ name: "sleep", args: [3000] })));
      const ids = inflight.map((t) => t.id);
      await waitFor("4 sleep tasks running on worker A", async () => {
        const ledger = await readLedger(env.pool, env.schema);
        return ids.every((id) => ledger.has(id));
      });
      a.child.kill("SIGKILL");
      expect(await a.exited).toEqual({ code: null, signal: "SIGKILL" });
      const b = await worker();
      const queued = await client.createTasks(Array.from({ length: 20 }, (_, i) => ({ name: "recorded", args: [i] })));
      const all = [...ids, ...queued.map((t) => t.id)];
      await waitFor(
        "every task COMPLETED",
        async () => [...(await taskRows(env.pool, env.schema, all)).values()].every((r) => r.status === "COMPLETED"),
        30_000,
        100,
      );
      const ledger = await readLedger(env.pool, env.schema);
      const rows = await taskRows(env.pool, env.schema, all);
      for (const id of ids) {
        expect(ledger.get(id)).toEqual([
          { task_id: id, attempt: 1, pid: a.child.pid },
          { task_id: id, attempt: 2, pid: b.child.pid },
        ]);
        expect(rows.get(id)).toMatchObject({ status: "COMPLETED", attempt: 2, retry_count: 1 });
      }
      for (const t of queued) expect(ledger.get(t.id)).toHaveLength(1);
    });
  });
});

/** The error's message and its causes' messages, in one line. */
function messages(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { message?: unknown; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    parts.push(String(e.message));
  }
  return parts.join(" <- ");
}

describe.skipIf(skip)("the pgbouncer option", () => {
  const bouncer = new PrivatePgBouncer({ targetUrl: DATABASE_URL, poolSize: 2 });
  const schema = uniqueName("pgbouncer_option");
  const clients: SkiplockClient[] = [];
  const open = (databaseUrl: string, pgbouncer: boolean) => {
    const c = new SkiplockClient({ databaseUrl, redisUrl: null, schema, pgbouncer, logger: quiet });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    await bouncer.start();
    await migrate({ databaseUrl: DATABASE_URL, schema });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await bouncer.stop();
    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });

  /** Two clients taking turns to enqueue and read: the first error, or null after `rounds` turns each. */
  async function takeTurns(a: SkiplockClient, b: SkiplockClient, rounds = 20): Promise<unknown> {
    try {
      for (let i = 0; i < rounds; i++) {
        for (const c of [a, b]) {
          const t = await c.createTask("x", [i], { delay: 3600 });
          await c.getTask(t.id);
        }
      }
      return null;
    } catch (err) {
      return err;
    }
  }

  it("is needed: without it, named statements fail when clients share server connections", async () => {
    const err = await takeTurns(open(bouncer.url, false), open(bouncer.url, false));
    expect(err).toBeInstanceOf(PoolerSessionError);
    expect((err as PoolerSessionError).code).toBe("POOLER_SESSION");
    expect(messages(err)).toMatch(/prepared statement "skiplock_\w+" (does not exist|already exists)/);
    expect((err as Error).message).toMatch(/set pgbouncer: true \(SKIPLOCK_PGBOUNCER=1, --pgbouncer\)/);
  });

  it("is needed by workers too: without it their claims fail, are retried, and the log says what to set", async () => {
    const problems = problemLogger();
    const options = {
      databaseUrl: bouncer.url,
      redisUrl: null,
      schema,
      pgbouncer: false,
      concurrency: 4,
      pollInterval: 0.05,
      logger: problems,
      tasks: { counted: () => null },
    };
    // Three claim connections, two server connections: a third copy of the claim statement is always prepared on a
    // server connection that has one by that name already.
    const workers = [new Worker(options), new Worker(options), new Worker(options)];
    const enqueuer = open(DATABASE_URL, false);
    try {
      await Promise.all(workers.map((w) => w.start()));
      await enqueuer.createTasks(Array.from({ length: 300 }, () => ({ name: "counted", args: [] })));
      await waitFor(
        "a worker to log a failed statement",
        () => problems.lines.some((l) => l.includes("prepared statement")),
        30_000,
      );
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
    expect(problems.lines.join("\n")).toMatch(/set pgbouncer: true/);
    expect(problems.lines.join("\n")).toMatch(/prepared statement \\"skiplock_\w+\\" (does not exist|already exists)/);
  });

  it("is needed for the application's sake: without it skiplock's session settings reach other clients", async () => {
    // One server connection: whatever skiplock leaves on it, the next client gets.
    const direct = open(DATABASE_URL, false);
    for (const pgbouncer of [false, true]) {
      const single = new PrivatePgBouncer({ targetUrl: DATABASE_URL, poolSize: 1 });
      await single.start();
      const app = new pg.Client({ connectionString: single.url });
      const worker = new Worker({
        databaseUrl: single.url,
        redisUrl: null,
        schema,
        pgbouncer,
        pollInterval: 0.05,
        logger: quiet,
        tasks: { ran: () => null },
      });
      try {
        await worker.start();
        const task = await direct.createTask("ran");
        await waitFor("the task to run", async () => (await direct.getTask(task.id))?.status === "COMPLETED");
        await app.connect();
        const { rows } = await app.query<{ synchronous_commit: string }>("SHOW synchronous_commit");
        const timeout = await app.query<{ statement_timeout: string }>("SHOW statement_timeout");
        if (pgbouncer) {
          expect(rows[0]!.synchronous_commit).toBe("on");
          expect(timeout.rows[0]!.statement_timeout).toBe("0");
        } else {
          expect(rows[0]!.synchronous_commit).toBe("off");
          expect(timeout.rows[0]!.statement_timeout).toBe("27s");
        }
      } finally {
        await worker.stop();
        await app.end().catch(() => {});
        await single.stop();
      }
    }
  });

  it("makes the same turns succeed", async () => {
    expect(await takeTurns(open(bouncer.url, true), open(bouncer.url, true))).toBeNull();
  });

  it("is harmless on a direct connection", async () => {
    expect(await takeTurns(open(DATABASE_URL, true), open(DATABASE_URL, true))).toBeNull();
  });

  it("is read from SKIPLOCK_PGBOUNCER, and a bad value is refused", () => {
    expect(resolvePgbouncer(undefined, { SKIPLOCK_PGBOUNCER: "1" })).toBe(true);
    expect(resolvePgbouncer(undefined, { SKIPLOCK_PGBOUNCER: "true" })).toBe(true);
    expect(resolvePgbouncer(undefined, { SKIPLOCK_PGBOUNCER: "0" })).toBe(false);
    expect(resolvePgbouncer(undefined, {})).toBe(false);
    expect(resolvePgbouncer(false, { SKIPLOCK_PGBOUNCER: "1" })).toBe(false);
    expect(() => resolvePgbouncer(undefined, { SKIPLOCK_PGBOUNCER: "yes please" })).toThrow(/SKIPLOCK_PGBOUNCER/);
    expect(() => open(DATABASE_URL, "yes" as unknown as boolean)).toThrow(/invalid option pgbouncer/);
    expect(() => new Worker({ databaseUrl: DATABASE_URL, tasks: {}, pgbouncer: 1 as unknown as boolean })).toThrow(
      /invalid option pgbouncer/,
    );
  });
});

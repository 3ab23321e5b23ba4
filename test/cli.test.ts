import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadMigrations } from "../src/db/migrate.js";
import { SkiplockClient } from "../src/index.js";
import { FakePostgres } from "./fake-postgres.js";
import {
  CLI,
  DATABASE_URL,
  REDIS_URL,
  ROOT,
  freePort,
  freshSchema,
  quiet,
  runCli,
  startWorkerProcess,
  stopProc,
  waitFor,
} from "./helpers.js";

let env: Awaited<ReturnType<typeof freshSchema>>;
let client: SkiplockClient;
let cliEnv: Record<string, string | undefined>;

beforeAll(async () => {
  env = await freshSchema("cli");
  client = new SkiplockClient({ databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, schema: env.schema, logger: quiet });
  cliEnv = { DATABASE_URL, REDIS_URL, SKIPLOCK_SCHEMA: env.schema };
});

afterAll(async () => {
  await client.close();
  await env.drop();
});

describe("skiplock migrate", () => {
  it("applies the migrations once, and reports an up-to-date schema after", async () => {
    const schema = `t_cli_migrate_${process.pid}`;
    try {
      const first = await runCli(["migrate", "--schema", schema], { DATABASE_URL });
      expect(first).toMatchObject({ code: 0 });
      expect(first.stdout).toMatch(/applied 0001_tasks/);
      const again = await runCli(["migrate", "--schema", schema], { DATABASE_URL });
      expect(again.stdout).toMatch(/up to date/);
    } finally {
      await env.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });

  it("is safe when several processes migrate the same new schema at once", async () => {
    const schema = `t_cli_race_${process.pid}`;
    try {
      const runs = await Promise.all([1, 2, 3].map(() => runCli(["migrate", "--schema", schema], { DATABASE_URL })));
      expect(runs.map((r) => r.code)).toEqual([0, 0, 0]);
      // Each file is applied by exactly one of them (not necessarily all by the same one: each runs in its own
      // transaction, so another process may take the next file while the first waits for the lock again).
      const applied = runs.flatMap((r) => /applied (.*)/.exec(r.stdout)?.[1]?.split(", ") ?? []).sort();
      expect(applied).toEqual((await loadMigrations()).map((m) => m.name));
      const rows = await env.pool.query(`SELECT id FROM "${schema}".migrations ORDER BY id`);
      expect(rows.rows.map((r) => r.id)).toEqual((await loadMigrations()).map((m) => m.id));
    } finally {
      await env.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });
});

describe("skiplock enqueue / status", () => {
  it("enqueues a task, prints it as JSON, and status prints it back", async () => {
    const r = await runCli(["enqueue", "multiply", "[6, 7]", "--priority", "3", "--queue", "other"], cliEnv);
    expect(r.code).toBe(0);
    const task = JSON.parse(r.stdout);
    expect(task).toMatchObject({ name: "multiply", args: [6, 7], priority: 3, queue: "other", status: "PENDING" });
    const s = await runCli(["status", task.id], cliEnv);
    expect(s.code).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ id: task.id, status: "PENDING" });
  });

  it("waits for the result with --wait while a worker runs", async () => {
    const worker = await startWorkerProcess(env.schema, ["--concurrency", "2"]);
    try {
      const r = await runCli(["enqueue", "multiply", "[6, 7]", "--wait", "20"], cliEnv);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ status: "COMPLETED", result: 42 });
      const named = await runCli(["enqueue", "custom.name", '["hi"]', "--wait", "20"], cliEnv);
      expect(JSON.parse(named.stdout)).toMatchObject({ status: "COMPLETED", result: { echoed: "hi" } });
    } finally {
      await stopProc(worker);
    }
  });
});

/** Runs the built CLI; kills it and says so if it has not exited within `ms`. */
async function runCliWithin(
  ms: number,
  args: string[],
  env: Record<string, string | undefined>,
): Promise<{ code: number | null; stderr: string; killed: boolean }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, ms);
  const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stderr, killed };
}

describe("skiplock --version", () => {
  it("prints the package's version", async () => {
    const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    for (const flag of ["--version", "-V"]) {
      const r = await runCli([flag]);
      expect(r).toMatchObject({ code: 0, stdout: `${version}\n`, stderr: "" });
    }
  });
});

describe("bad input: one clear line, exit code 1", () => {
  /** Exactly one line on stderr, starting `skiplock: error: `, matching `re`; exit code 1. */
  const expectOneLineError = (r: { code: number | null; stderr: string }, re: RegExp) => {
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^skiplock: error: /);
    expect(lines[0]).toMatch(re);
  };

  it("for a database nobody listens on", async () => {
    const port = await freePort();
    const r = await runCli(["status", "1"], { ...cliEnv, DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/test` });
    expectOneLineError(r, /skiplock: error: .*ECONNREFUSED/);
    const w = await runCli(["run-worker", "--tasks", "test/fixtures/tasks.js"], {
      ...cliEnv,
      DATABASE_URL: `postgres://postgres:secret@127.0.0.1:${port}/test`,
    });
    expectOneLineError(w, /skiplock: error: cannot connect to Postgres at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1/);
  });

  it("for malformed URLs", async () => {
    expectOneLineError(await runCli(["status", "1", "--database-url", "not a url"], cliEnv), /malformed database URL/);
    expectOneLineError(await runCli(["status", "1", "--database-url", "mysql://x/y"], cliEnv), /postgres:\/\//);
    expectOneLineError(
      await runCli(["enqueue", "x", "--redis-url", "http://localhost"], cliEnv),
      /Redis URL must start with redis:\/\//,
    );
    expectOneLineError(await runCli(["status", "1"], { ...cliEnv, DATABASE_URL: "" }), /no database URL/);
  });

  it("for a schema that was never migrated", async () => {
    const r = await runCli(["run-worker", "--tasks", "test/fixtures/tasks.js", "--schema", "nothing_here"], cliEnv);
    expectOneLineError(r, /schema "nothing_here" has no skiplock tables: run `skiplock migrate` first/);
  });

  it("for invalid names, arguments and flags", async () => {
    expectOneLineError(await runCli(["status", "1", "--schema", "bad-schema!"], cliEnv), /invalid schema name/);
    expectOneLineError(await runCli(["enqueue", "x", "[]", "--queue", "a b"], cliEnv), /invalid queue name/);
    expectOneLineError(await runCli(["enqueue", "x", "{nope"], cliEnv), /args must be a JSON array/);
    expectOneLineError(await runCli(["enqueue", "x", '{"a":1}'], cliEnv), /args must be a JSON array/);
    expectOneLineError(await runCli(["status", "abc"], cliEnv), /invalid task id/);
    expectOneLineError(await runCli(["status", "99999999"], cliEnv), /no task with id 99999999/);
    expectOneLineError(
      await runCli(["run-worker", "--tasks", "test/fixtures/tasks.js", "--bogus"], cliEnv),
      /unknown option '--bogus'/,
    );
    expectOneLineError(
      await runCli(["run-worker", "--tasks", "no/such/module.js"], cliEnv),
      /cannot load tasks module/,
    );
  });

  it("commander's own errors: unknown flag (with its suggestion), bad number, missing argument or option, unknown command", async () => {
    const worker = ["run-worker", "--tasks", "test/fixtures/tasks.js"];
    expectOneLineError(
      await runCli([...worker, "--concurency", "2"], cliEnv),
      /^skiplock: error: unknown option '--concurency' \(Did you mean --concurrency\?\) \(see skiplock run-worker --help\)$/,
    );
    expectOneLineError(
      await runCli([...worker, "--concurrency", "two"], cliEnv),
      /^skiplock: error: invalid option --concurrency: expected an integer, got "two" \(see skiplock run-worker --help\)$/,
    );
    expectOneLineError(
      await runCli([...worker, "--poll-interval", "soon"], cliEnv),
      /invalid option --poll-interval: expected seconds/,
    );
    expectOneLineError(await runCli(["run-worker"], cliEnv), /required option '--tasks <module>' not specified/);
    expectOneLineError(await runCli(["enqueue"], cliEnv), /missing required argument 'name'/);
    expectOneLineError(
      await runCli(["enqueue", "x", "[]", "--delay"], cliEnv),
      /option '--delay <s>' argument missing/,
    );
    expectOneLineError(await runCli(["frobnicate"], cliEnv), /unknown command 'frobnicate'/);
  });

  it("values the library refuses are reported under the command's flag, not the option's name in code", async () => {
    const worker = ["run-worker", "--tasks", "test/fixtures/tasks.js"];
    const cases: [string[], RegExp][] = [
      [
        [...worker, "--retry", "-1"],
        /^skiplock: error: invalid option --retry: expected an integer between 0 and \d+, got -1$/,
      ],
      [
        [...worker, "--concurrency", "0"],
        /invalid option --concurrency: expected an integer between 1 and \d+, got 0$/,
      ],
      [
        [...worker, "--poll-interval", "0"],
        /invalid option --poll-interval: expected seconds between 0\.01 and \d+, got 0$/,
      ],
      [
        [...worker, "--stale-after", "1"],
        /invalid option --stale-after: must be at least twice --heartbeat-interval \(5 s\)/,
      ],
      [[...worker, "--prefetch", "-3"], /invalid option --prefetch: /],
      [["enqueue", "x", "[]", "--max-retries", "-2"], /invalid option --max-retries: .*got -2$/],
      [["enqueue", "x", "[]", "--timeout", "0"], /invalid option --timeout: .*got 0$/],
      [["purge", "--days", "1", "--batch-size", "0"], /invalid option --batch-size: .*got 0$/],
      [["purge", "--days", "1", "--status", "PENDING"], /invalid option --status: choose among/],
      // Days, not seconds: a hundred years at most (365 × 100 days), where seconds would allow ten years' worth.
      [["purge", "--days", "40000"], /invalid option --days: expected days between 0 and 36500, got 40000$/],
      [["purge", "--days", "soon"], /invalid option --days: expected days \(a number >= 0\), got "soon"/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli(args, cliEnv);
      expectOneLineError(r, re);
      expect(r.stderr).not.toMatch(/maxRetries|pollInterval|heartbeatInterval|staleAfter|batchSize|statuses/);
    }
  });

  it("never prints a password: one holding '/', one in user:pass@, one in ?password=", async () => {
    const port = await freePort();
    const urls = [
      `postgres://app:s3cr/et@127.0.0.1:${port}/test`,
      `postgres://app:hunter2@127.0.0.1:${port}/test`,
      `postgres://app@127.0.0.1:${port}/test?password=hunter2`,
    ];
    for (const url of urls) {
      for (const args of [["status", "1"], ["migrate"], ["enqueue", "x"]]) {
        const r = await runCli([...args, "--database-url", url], cliEnv);
        expectOneLineError(r, /malformed database URL|cannot connect to Postgres/);
        expect(r.stderr).not.toMatch(/s3cr|hunter2/);
      }
    }
  });

  it("migrate and status exit at once when the login fails", async () => {
    // A SCRAM login without a password fails in the client; the server would wait 60 s for the rest of it.
    const scram = new FakePostgres("scram");
    const wrong = new FakePostgres("wrong-password");
    await Promise.all([scram.start(), wrong.start()]);
    try {
      for (const args of [["migrate"], ["status", "1"], ["enqueue", "x"], ["purge", "--days", "1"]]) {
        const r = await runCliWithin(10_000, args, { ...cliEnv, DATABASE_URL: scram.url("app") });
        expect(r.killed, `${args[0]} still running after 10 s`).toBe(false);
        expectOneLineError(
          r,
          /^skiplock: error: cannot connect to Postgres at postgres:\/\/app@127\.0\.0\.1:\d+\/app: SASL: /,
        );
        const w = await runCliWithin(10_000, args, { ...cliEnv, DATABASE_URL: wrong.url("app:hunter2") });
        expect(w.killed).toBe(false);
        expectOneLineError(w, /cannot connect to Postgres at postgres:\/\/app:\*\*\*@.*password authentication failed/);
      }
    } finally {
      await Promise.all([scram.stop(), wrong.stop()]);
    }
  });

  it("for a schema that was never migrated, from every command that reads it", async () => {
    for (const args of [
      ["status", "1"],
      ["enqueue", "x"],
      ["purge", "--days", "1"],
    ]) {
      const r = await runCli([...args, "--schema", "nothing_here"], cliEnv);
      expectOneLineError(
        r,
        /^skiplock: error: schema "nothing_here" has no skiplock tables: run `skiplock migrate` first$/,
      );
    }
  });

  it("--redis-url only on the commands that use Redis", async () => {
    for (const cmd of ["migrate", "status", "purge"]) {
      expect((await runCli([cmd, "--help"], cliEnv)).stdout).not.toMatch(/--redis-url/);
    }
    for (const cmd of ["run-worker", "enqueue"]) {
      expect((await runCli([cmd, "--help"], cliEnv)).stdout).toMatch(/--redis-url/);
    }
    expectOneLineError(await runCli(["status", "1", "--redis-url", REDIS_URL], cliEnv), /unknown option '--redis-url'/);
  });

  it("--help on each command", async () => {
    for (const cmd of ["migrate", "run-worker", "enqueue", "status"]) {
      const r = await runCli([cmd, "--help"], cliEnv);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/--database-url/);
    }
    const rw = await runCli(["run-worker", "--help"], cliEnv);
    for (const flag of ["--concurrency", "--retry", "--tasks", "--queue", "--shutdown-timeout", "--stale-after"]) {
      expect(rw.stdout).toContain(flag);
    }
  });
});

describe("skiplock run-worker shutdown", () => {
  it("on SIGTERM stops claiming, lets running tasks finish, and exits 0", async () => {
    const worker = await startWorkerProcess(env.schema, ["--concurrency", "2", "--shutdown-timeout", "20"]);
    const running = await client.createTask("sleep", [1500]);
    const queued = await client.createTasks([
      { name: "sleep", args: [10] },
      { name: "sleep", args: [10] },
      { name: "sleep", args: [10] },
    ]);
    await waitFor("task running", async () => (await client.getTask(running.id))?.status === "PROGRESS");
    worker.child.kill("SIGTERM");
    const exit = await worker.exited;
    expect(exit.code).toBe(0);
    expect((await client.getTask(running.id))?.status).toBe("COMPLETED");
    // Whatever it did not claim before the signal is still there for the next worker.
    const states = await Promise.all(queued.map(async (t) => (await client.getTask(t.id))!.status));
    for (const s of states) expect(["COMPLETED", "PENDING"]).toContain(s);
    expect(worker.events.map((e) => e.event)).toContain("worker:stopped");
  });

  it("hands tasks that outlive --shutdown-timeout back to PENDING, without using a retry", async () => {
    const worker = await startWorkerProcess(env.schema, ["--shutdown-timeout", "0.5"]);
    const long = await client.createTask("sleep", [60_000]);
    await waitFor("task running", async () => (await client.getTask(long.id))?.status === "PROGRESS");
    worker.child.kill("SIGTERM");
    expect((await worker.exited).code).toBe(0);
    const after = await client.getTask(long.id);
    expect(after).toMatchObject({ status: "PENDING", retryCount: 0 });
    await client.cancelTask(long.id);
  });

  it("exits at once on a second signal", async () => {
    const worker = await startWorkerProcess(env.schema, ["--shutdown-timeout", "60"]);
    const long = await client.createTask("sleep", [60_000]);
    await waitFor("task running", async () => (await client.getTask(long.id))?.status === "PROGRESS");
    worker.child.kill("SIGTERM");
    await worker.waitForEvent("worker:stopping");
    worker.child.kill("SIGTERM");
    expect((await worker.exited).code).toBe(130);
    await env.pool.query(`DELETE FROM "${env.schema}".tasks WHERE id = $1`, [long.id]);
    await stopProc(worker);
  });
});

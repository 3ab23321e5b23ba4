import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { migrate } from "../src/db/migrate.js";
import { isEmbeddedUrl } from "../src/embedded/url.js";
import { silentLogger } from "../src/logger.js";
import { embedded, EMBEDDED_TEST_URL, embeddedTestPool } from "./embedded-place.js";

export const DATABASE_URL = embedded
  ? EMBEDDED_TEST_URL
  : (process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test");
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const CLI = fileURLToPath(new URL("../dist/bin/skiplock.js", import.meta.url));
export const FIXTURE_TASKS = fileURLToPath(new URL("./fixtures/tasks.js", import.meta.url));
export const quiet = silentLogger;

/** A name no other test run uses: a schema or database name built from `label`. */
export function uniqueName(label: string): string {
  return `t_${label.replace(/[^a-z0-9_]/gi, "_").toLowerCase()}_${randomBytes(4).toString("hex")}`;
}

/** Migrates `schema` on `databaseUrl`, adds the ledger table, and returns a pool on that database. */
export async function migratedWithLedger(databaseUrl: string, schema: string): Promise<pg.Pool> {
  // On the embedded database the pool comes first: its share keeps an in-memory database alive past the migration.
  const pool = isEmbeddedUrl(databaseUrl)
    ? embeddedTestPool(databaseUrl)
    : new pg.Pool({ connectionString: databaseUrl, max: 4 });
  await migrate({ databaseUrl, schema });
  pool.on("error", () => {});
  // The ledger: every execution of a fixture task that records itself adds a row here.
  await pool.query(
    `CREATE TABLE "${schema}".ledger (task_id bigint, attempt int, pid int, at timestamptz DEFAULT clock_timestamp())`,
  );
  return pool;
}

/** Set by test/setup.ts when a test of this file failed: its schema or database is then kept to look at. */
export const testFile = { failed: false };

/** Whether to keep a test file's schema (a test failed, or KEEP_SCHEMAS is set); says where it is when kept. */
function keep(what: string): boolean {
  if (!testFile.failed && !process.env.KEEP_SCHEMAS) return false;
  if (testFile.failed) console.warn(`a test failed: ${what} kept for inspection`);
  return true;
}

/** A fresh schema for one test file, migrated, with a ledger; `drop()` removes it unless a test failed. */
export async function freshSchema(
  label: string,
): Promise<{ schema: string; pool: pg.Pool; drop: () => Promise<void> }> {
  const schema = uniqueName(label);
  const pool = await migratedWithLedger(DATABASE_URL, schema);
  return {
    schema,
    pool,
    drop: async () => {
      if (!keep(`schema ${schema}`)) await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
    },
  };
}

/** Polls `check` until it returns a truthy value or the deadline passes (then throws with `what`). */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T> | T,
  timeoutMs = 20_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** An event a run-worker process forwarded over its IPC channel (see src/cli/forward-events.ts). */
export interface ProcEvent {
  event: string;
  data: any;
}

export interface Proc {
  child: ChildProcess;
  output: () => string;
  /** Events the process sent over its IPC channel so far (run-worker forwards its worker's events). */
  events: ProcEvent[];
  /** Resolves with the first event named `event` (and matching `match`), sent before or after the call. */
  waitForEvent: (event: string, match?: (data: any) => boolean, timeoutMs?: number) => Promise<ProcEvent>;
  /** Resolves when the output matches `re` (for a script's own printed result, never for log text). */
  waitForOutput: (re: RegExp, timeoutMs?: number) => Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnProc(command: string, args: string[], env: Record<string, string | undefined> = {}): Proc {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  let out = "";
  const events: ProcEvent[] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of waiters) w();
  };
  const onData = (d: Buffer) => {
    out += d.toString();
    notify();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  child.on("message", (m: ProcEvent) => {
    events.push(m);
    notify();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  /** Resolves with `found()` once it returns something, re-checked on every message and line of output. */
  const until = <T>(found: () => T | undefined, what: string, timeoutMs: number) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const value = found();
        if (value === undefined) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(value);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; events: ${events.map((e) => e.event).join(", ")}\n${out}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return {
    child,
    output: () => out,
    events,
    exited,
    waitForEvent: (event, match = () => true, timeoutMs = 20_000) =>
      until(() => events.find((e) => e.event === event && match(e.data)), `event ${event}`, timeoutMs),
    waitForOutput: async (re, timeoutMs = 20_000) => {
      await until(() => (re.test(out) ? true : undefined), String(re), timeoutMs);
    },
  };
}

/** Runs the built CLI to completion. */
export async function runCli(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  return { code, stdout, stderr };
}

/** Stops a child process and waits for it. */
export async function stopProc(p: Proc, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
  await p.exited;
}

/** A redis-server of the test's own on a free port, which the test may stop and start without touching others. */
export class PrivateRedis {
  port = 0;
  #proc: ChildProcess | null = null;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    const proc = spawn(
      "redis-server",
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    this.#proc = proc;
    let out = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${out}`)), 10_000);
      proc.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (/Ready to accept connections/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.on("exit", () => reject(new Error(`redis-server exited:\n${out}`)));
    });
  }

  async stop(): Promise<void> {
    const proc = this.#proc;
    if (!proc || proc.exitCode !== null) return;
    this.#proc = null;
    const exited = new Promise((r) => proc.on("exit", r));
    proc.kill("SIGKILL");
    await exited;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Fault-injection helpers (test/faults.*.test.ts).

export type SchemaEnv = Awaited<ReturnType<typeof freshSchema>>;

/** One ledger row: an execution of a fixture task that records itself. */
export interface LedgerRow {
  task_id: string;
  attempt: number;
  pid: number;
}

/** The ledger by task id, each task's executions in the order they recorded. */
export async function readLedger(pool: pg.Pool, schema: string): Promise<Map<string, LedgerRow[]>> {
  const { rows } = await pool.query<LedgerRow>(
    `SELECT task_id::text AS task_id, attempt, pid FROM "${schema}".ledger ORDER BY at, attempt`,
  );
  const byTask = new Map<string, LedgerRow[]>();
  for (const r of rows) {
    let list = byTask.get(r.task_id);
    if (!list) byTask.set(r.task_id, (list = []));
    list.push(r);
  }
  return byTask;
}

/** The raw task rows (snake_case, ids as text), by id. */
export async function taskRows(
  pool: pg.Pool,
  schema: string,
  ids?: readonly string[],
): Promise<Map<string, Record<string, any>>> {
  const { rows } = ids
    ? await pool.query(
        `SELECT t.*, t.id::text AS id FROM "${schema}".tasks t WHERE t.id = ANY($1::bigint[]) ORDER BY t.id`,
        [ids],
      )
    : await pool.query(`SELECT t.*, t.id::text AS id FROM "${schema}".tasks t ORDER BY t.id`);
  return new Map(rows.map((r) => [r.id as string, r]));
}

/** Task counts by status. */
export async function statusCounts(pool: pg.Pool, schema: string): Promise<Record<string, number>> {
  const { rows } = await pool.query(`SELECT status, count(*)::int AS n FROM "${schema}".tasks GROUP BY status`);
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

export interface StaleTaskSpec {
  name?: string;
  queue?: string;
  status?: "PENDING" | "PROGRESS" | "COMPLETED" | "FAILED";
  /** Seconds since the last heartbeat; default 3600. */
  heartbeatAge?: number;
  attempt?: number;
  retryCount?: number;
  maxRetries?: number | null;
  workerId?: string;
  /** Whether the handler had started (false: the row sat in the worker's prefetch buffer); default true. */
  started?: boolean;
}

/** The worker id insertCrashedTasks gives its rows unless told otherwise. */
export const CRASHED_WORKER = "dead-host:99999:deadbeef";

/**
 * Inserts `n` rows as a crash leaves them: PROGRESS, claimed by a worker that is gone (`workerId`), attempt 1,
 * heartbeat `heartbeatAge` seconds old. Returns their ids in insert order.
 */
export async function insertCrashedTasks(
  pool: pg.Pool,
  schema: string,
  n: number,
  spec: StaleTaskSpec = {},
): Promise<string[]> {
  const age = spec.heartbeatAge ?? 3600;
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO "${schema}".tasks (name, args, queue, status, attempt, retry_count, max_retries, worker_id,
                                     started_at, heartbeat_at, finished_at, run_at)
     SELECT $1, jsonb_build_array(g), $2, $3, $4, $5, $6, $7,
            CASE WHEN $10::bool THEN now() - ($8::float8 + 1) * interval '1 second' END, now() - $8::float8 * interval '1 second',
            CASE WHEN $3 IN ('COMPLETED', 'FAILED') THEN now() END, now() - interval '1 hour'
       FROM generate_series(1, $9::int) AS g
     RETURNING id::text AS id`,
    [
      spec.name ?? "recorded",
      spec.queue ?? "default",
      spec.status ?? "PROGRESS",
      spec.attempt ?? 1,
      spec.retryCount ?? 0,
      spec.maxRetries === undefined ? 1 : spec.maxRetries,
      spec.workerId ?? CRASHED_WORKER,
      age,
      n,
      spec.started ?? true,
    ],
  );
  return rows.map((r) => r.id).sort((a, b) => Number(a) - Number(b));
}

/**
 * Keeps one `skiplock run-worker` alive: whenever it exits (a poison task calling process.exit, a kill), another is
 * started, like systemd or Kubernetes would. `stop()` ends the loop and the current worker.
 */
export function superviseWorker(
  schema: string,
  args: string[] = [],
  env: Record<string, string | undefined> = {},
): { procs: Proc[]; exits: { code: number | null; signal: NodeJS.Signals | null }[]; stop: () => Promise<void> } {
  const procs: Proc[] = [];
  const exits: { code: number | null; signal: NodeJS.Signals | null }[] = [];
  let stopped = false;
  const launch = () => {
    const p = spawnProc(process.execPath, [CLI, "run-worker", "--tasks", FIXTURE_TASKS, ...args], {
      DATABASE_URL,
      REDIS_URL,
      SKIPLOCK_SCHEMA: schema,
      ...env,
    });
    procs.push(p);
    void p.exited.then((e) => {
      exits.push(e);
      if (!stopped) launch();
    });
  };
  launch();
  return {
    procs,
    exits,
    stop: async () => {
      stopped = true;
      await Promise.all(procs.map((p) => stopProc(p, "SIGKILL")));
    },
  };
}

/**
 * A database of the test's own (for faults that act on a whole database, such as terminating every skiplock
 * backend in it), with a migrated schema and a ledger like freshSchema's. `drop()` removes both.
 */
export async function freshDatabase(label: string): Promise<SchemaEnv & { databaseUrl: string }> {
  const name = uniqueName(label);
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(DATABASE_URL);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  const schema = name;
  const pool = await migratedWithLedger(databaseUrl, schema);
  return {
    databaseUrl,
    schema,
    pool,
    drop: async () => {
      await pool.end();
      if (keep(`database ${name}`)) return;
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.end();
    },
  };
}

/** CPU seconds (user + system, all threads) a process has used so far; Linux only (reads /proc). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of /proc/PID/stat, i.e. 11 and 12 after "pid (comm) ".
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Waits until a process uses less than `maxShare` of one core over a window of at least `windowMs` (samples are
 * polled, so this is a condition, not a sleep): e.g. a thread stuck in a loop has been terminated.
 */
export async function waitForCpuIdle(
  pid: number,
  what: string,
  maxShare = 0.3,
  windowMs = 1000,
  timeoutMs = 15_000,
): Promise<void> {
  const samples: { at: number; cpu: number }[] = [];
  await waitFor(
    what,
    () => {
      const now = { at: Date.now(), cpu: cpuSeconds(pid) };
      samples.push(now);
      for (let i = samples.length - 2; i >= 0; i--) {
        const s = samples[i]!;
        if (now.at - s.at >= windowMs) return (now.cpu - s.cpu) / ((now.at - s.at) / 1000) < maxShare;
      }
      return false;
    },
    timeoutMs,
    100,
  );
}

/**
 * `skiplock run-worker` as a child process; resolves once it reported that it started, and fails at once (with the
 * worker's output) when the process exits before that, e.g. on an unknown flag.
 */
export async function startWorkerProcess(
  schema: string,
  args: string[] = [],
  env: Record<string, string | undefined> = {},
): Promise<Proc> {
  const p = spawnProc(process.execPath, [CLI, "run-worker", "--tasks", FIXTURE_TASKS, ...args], {
    DATABASE_URL,
    REDIS_URL,
    SKIPLOCK_SCHEMA: schema,
    ...env,
  });
  const exitedEarly = p.exited.then((e) => {
    throw new Error(`worker exited before it started (${JSON.stringify(e)}):\n${p.output()}`);
  });
  exitedEarly.catch(() => {});
  await Promise.race([p.waitForEvent("worker:started"), exitedEarly]);
  return p;
}

/**
 * The worker processes of one test file. `start` launches one (`baseArgs` first; `env` over the file's environment)
 * and keeps it; `killAll`, from an afterEach or afterAll, resumes any a test froze with SIGSTOP and kills every one
 * with SIGKILL, so no test leaves a worker running behind it.
 */
export class WorkerProcs {
  readonly all: Proc[] = [];

  constructor(
    readonly schema: () => string,
    readonly baseArgs: string[] = [],
    readonly env: () => Record<string, string | undefined> = () => ({}),
  ) {}

  async start(args: string[] = [], env: Record<string, string | undefined> = {}): Promise<Proc> {
    const p = await startWorkerProcess(this.schema(), [...this.baseArgs, ...args], { ...this.env(), ...env });
    this.all.push(p);
    return p;
  }

  async killAll(): Promise<void> {
    for (const p of this.all) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGCONT");
    await Promise.all(this.all.splice(0).map((p) => stopProc(p, "SIGKILL")));
  }
}

/**
 * A TCP proxy in front of Postgres, Redis or anything that can misbehave like a network: `blackhole()` keeps
 * forwarding what clients send but drops every byte coming back (a statement runs and commits, its answer never
 * arrives); `silence()` stops all traffic on the open connections without closing them, as a dead peer behind a NAT
 * looks (neither side gets an error, only a liveness check can tell), while new connections work; `resetAll()` cuts
 * every open connection, and new connections work normally again after it.
 */
export class FlakyProxy {
  port = 0;
  #server: Server | null = null;
  readonly #pairs = new Set<[Socket, Socket]>();
  /** Connections silence() left open, closed by stop(). */
  readonly #silenced: Socket[] = [];
  #blackhole = false;
  constructor(
    readonly targetPort: number,
    readonly targetHost = "127.0.0.1",
  ) {}

  /** A database URL like `url`, through this proxy. */
  url(databaseUrl: string): string {
    const u = new URL(databaseUrl);
    u.hostname = "127.0.0.1";
    u.port = String(this.port);
    return u.toString();
  }

  async start(): Promise<void> {
    this.port = await freePort();
    const server = createServer((client) => {
      const upstream = createConnection({ host: this.targetHost, port: this.targetPort });
      const pair: [Socket, Socket] = [client, upstream];
      this.#pairs.add(pair);
      client.on("data", (d) => upstream.write(d));
      upstream.on("data", (d) => {
        if (!this.#blackhole) client.write(d);
      });
      const close = () => {
        this.#pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on("error", close).on("close", close);
      upstream.on("error", close).on("close", close);
    });
    this.#server = server;
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
  }

  /** Open connections through the proxy. */
  get connections(): number {
    return this.#pairs.size;
  }

  blackhole(): void {
    this.#blackhole = true;
  }

  /** Stops every open connection's traffic both ways, leaving it open; returns how many there were. */
  silence(): number {
    const n = this.#pairs.size;
    for (const [client, upstream] of this.#pairs) {
      for (const s of [client, upstream]) {
        s.removeAllListeners("data");
        s.pause();
        this.#silenced.push(s);
      }
    }
    this.#pairs.clear();
    return n;
  }

  /** Cuts every connection (clients see a reset) and lets new ones through normally. */
  resetAll(): void {
    this.#blackhole = false;
    for (const [client, upstream] of this.#pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  async stop(): Promise<void> {
    this.resetAll();
    for (const s of this.#silenced.splice(0)) s.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}

/** Worker flags for fault tests: heartbeats every 0.2 s; a task without one for 1.5 s is swept (sweeps every ~0.75 s). */
export const FAST_SWEEP = ["--heartbeat-interval", "0.2", "--stale-after", "1.5"];

// The embedded database (a pglite: URL): the same client and worker on PGlite in the process, its in-process
// doorbell, the gate that keeps one caller's transaction whole, the directory lock between processes, and the
// errors for a missing URL, a malformed one and a missing package.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveConnection } from "../src/config.js";
import { loadPglite, PGLITE_PACKAGE } from "../src/embedded/load.js";
import { LOCK_FILE } from "../src/embedded/lock.js";
import { acquireEmbedded } from "../src/embedded/registry.js";
import { parseEmbeddedUrl } from "../src/embedded/url.js";
import { createNotifier, InProcessNotifier } from "../src/notify/index.js";
import { embeddedTestPool } from "./embedded-place.js";
import {
  ConfigError,
  EmbeddedDatabaseLockedError,
  EmbeddedDependencyMissingError,
  SkiplockClient,
  Worker,
} from "../src/index.js";
import { quiet, spawnProc, stopProc } from "./helpers.js";

const DIST_INDEX = new URL("../dist/src/index.js", import.meta.url).href;

describe("pglite: URLs", () => {
  it("an unset DATABASE_URL is still an error, which names the embedded database for trying things out", () => {
    expect(() => resolveConnection({}, {})).toThrow(ConfigError);
    expect(() => resolveConnection({}, {})).toThrow(/pglite:\.\/\.skiplock\/db/);
  });

  it("accepts pglite:memory and a directory, resolved so that two spellings share one instance", () => {
    expect(resolveConnection({ databaseUrl: "pglite:memory" }, {}).databaseUrl).toBe("pglite:memory");
    expect(parseEmbeddedUrl("pglite:memory")).toEqual({ key: "memory", directory: null });
    const a = parseEmbeddedUrl("pglite:./.skiplock/db");
    expect(a.directory).toBe(join(process.cwd(), ".skiplock/db"));
    expect(parseEmbeddedUrl(`pglite:${process.cwd()}/.skiplock/./db`).key).toBe(a.key);
  });

  it("refuses a pglite: URL without a place, or with a host", () => {
    expect(() => resolveConnection({ databaseUrl: "pglite:" }, {})).toThrow(/expected pglite:memory or pglite:</);
    expect(() => resolveConnection({ databaseUrl: "pglite://db.example.com/x" }, {})).toThrow(ConfigError);
    expect(() => resolveConnection({ databaseUrl: "mysql://x" }, {})).toThrow(
      /postgres:\/\/, postgresql:\/\/ or pglite:/,
    );
  });
});

describe("the optional package", () => {
  it("a missing package is one typed error naming what to install", async () => {
    const missing = Object.assign(new Error("Cannot find package '@electric-sql/pglite'"), {
      code: "ERR_MODULE_NOT_FOUND",
    });
    const err = await loadPglite(() => Promise.reject(missing)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EmbeddedDependencyMissingError);
    expect((err as EmbeddedDependencyMissingError).packageName).toBe(PGLITE_PACKAGE);
    expect((err as Error).message).toContain(`npm install ${PGLITE_PACKAGE}`);
    expect((err as Error).cause).toBe(missing);
  });

  it("another failure of the import is not mistaken for a missing package", async () => {
    const broken = new SyntaxError("Unexpected token");
    await expect(loadPglite(() => Promise.reject(broken))).rejects.toBe(broken);
  });

  it("without the package installed, skiplock imports and a pglite: URL fails with that error", async () => {
    // A resolve hook that answers as a machine without the package would.
    const hooks = `export async function resolve(spec, ctx, next) {
      if (spec.startsWith("@electric-sql/pglite")) {
        throw Object.assign(new Error("Cannot find package " + spec), { code: "ERR_MODULE_NOT_FOUND" });
      }
      return next(spec, ctx);
    }`;
    const register = `import { register } from "node:module";
      register("data:text/javascript," + encodeURIComponent(${JSON.stringify(hooks)}));`;
    const p = spawnProc(process.execPath, [
      "--import",
      `data:text/javascript,${encodeURIComponent(register)}`,
      "--input-type=module",
      "-e",
      `const { SkiplockClient } = await import(${JSON.stringify(DIST_INDEX)});
       const c = new SkiplockClient({ databaseUrl: "pglite:memory" });
       const err = await c.countTasks().catch((e) => e);
       await c.close();
       process.stdout.write("result " + err.code + " " + err.message + "\\n");`,
    ]);
    expect((await p.exited).code).toBe(0);
    expect(p.output()).toContain(`result EMBEDDED_DEPENDENCY_MISSING`);
    expect(p.output()).toContain(`npm install ${PGLITE_PACKAGE}`);
  });
});

describe("the in-process doorbell", () => {
  it("is chosen for a pglite: URL even with a Redis URL, and says so in a debug line", () => {
    const debug: string[] = [];
    const logger = { ...quiet, debug: (m: string) => void debug.push(m) };
    const n = createNotifier({ databaseUrl: "pglite:memory", redisUrl: "redis://127.0.0.1:6379", schema: "s", logger });
    expect(n).toBeInstanceOf(InProcessNotifier);
    expect(debug).toEqual(["embedded database: the doorbell is in-process, REDIS_URL is not used"]);
  });

  it("carries messages between notifiers of one database and schema only, after the publisher's call", async () => {
    const a = new InProcessNotifier({ database: "memory", schema: "s1" });
    const b = new InProcessNotifier({ database: "memory", schema: "s1" });
    const other = new InProcessNotifier({ database: "memory", schema: "s2" });
    const heard: string[] = [];
    b.onWake(["q"], (queue, count) => heard.push(`wake ${queue} ${count}`));
    b.onFinished((id) => heard.push(`finished ${id}`));
    other.onWake(["q"], () => heard.push("other schema"));
    a.publishWake("q", 3);
    a.publishFinished(["7", "8"]);
    expect(heard).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(heard).toEqual(["wake q 3", "finished 7", "finished 8"]);
    await b.stop();
    a.publishWake("q", 1);
    await new Promise((r) => setImmediate(r));
    expect(heard).toHaveLength(3);
    await Promise.all([a.stop(), other.stop()]);
  });
});

describe("client and worker on pglite:memory", () => {
  const url = "pglite:memory";
  let client: SkiplockClient;

  beforeAll(async () => {
    // A Redis URL that nothing answers: on the embedded database it is not used at all.
    client = new SkiplockClient({ databaseUrl: url, redisUrl: "redis://127.0.0.1:9", logger: quiet });
    await client.migrate();
  });
  afterAll(async () => {
    await client.close();
  });

  it("runs tasks, and the in-process doorbell wakes an idle worker (REDIS_URL set, unused)", async () => {
    const worker = new Worker({
      databaseUrl: url,
      redisUrl: "redis://127.0.0.1:9",
      logger: quiet,
      concurrency: 2,
      // Polling alone would take a minute: only the doorbell brings the tasks within the test's time.
      pollInterval: 60,
      tasks: { multiply: (a: number, b: number) => a * b },
    });
    await worker.start();
    try {
      const tasks = await client.createTasks([
        { name: "multiply", args: [2, 3] },
        { name: "multiply", args: [4, 5] },
      ]);
      const done = await Promise.all(tasks.map((t) => client.waitForCompletion(t.id, { timeout: 30 })));
      expect(done.map((t) => [t?.status, t?.result])).toEqual([
        ["COMPLETED", 6],
        ["COMPLETED", 20],
      ]);
    } finally {
      await worker.stop();
    }
  });

  it("a failing attempt is retried up to maxRetries", async () => {
    let calls = 0;
    const worker = new Worker({
      databaseUrl: url,
      logger: quiet,
      concurrency: 2,
      maxRetries: 1,
      retryBackoff: { base: 0.01, max: 0.01 },
      tasks: {
        flaky: () => {
          if (++calls === 1) throw new Error("first attempt fails");
          return "second";
        },
        broken: () => {
          throw new Error("always");
        },
      },
    });
    await worker.start();
    try {
      const [flaky, broken] = await client.createTasks([{ name: "flaky" }, { name: "broken" }]);
      const a = await client.waitForCompletion(flaky!.id, { timeout: 30 });
      const b = await client.waitForCompletion(broken!.id, { timeout: 30 });
      expect([a?.status, a?.result, a?.retryCount]).toEqual(["COMPLETED", "second", 1]);
      expect([b?.status, b?.retryCount, b?.errors.length]).toEqual(["FAILED", 1, 2]);
    } finally {
      await worker.stop();
    }
  });

  it("a transaction is never interleaved with another caller's statements, and a rolled back one leaves nothing", async () => {
    const before = (await client.countTasks()).totals.PENDING;
    let readDuring: Promise<unknown> | null = null;
    let settledDuring = false;
    await client.transaction(async (tx) => {
      await tx.createTask("later", [1], { delay: 3600 });
      // Another caller's statement, sent while the transaction is open: it waits for the commit. In the one
      // session it would otherwise run inside this transaction and see its uncommitted row.
      readDuring = client.countTasks().then((c) => {
        settledDuring = true;
        return c.totals.PENDING;
      });
      for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
      expect(settledDuring).toBe(false);
    });
    expect(await readDuring).toBe(before + 1);
    await expect(
      client.transaction(async (tx) => {
        await tx.createTask("later", [2], { delay: 3600 });
        throw new Error("roll it back");
      }),
    ).rejects.toThrow("roll it back");
    expect((await client.countTasks()).totals.PENDING).toBe(before + 1);
  });

  it("a pool client released inside a transaction does not hold the database: its transaction is rolled back", async () => {
    const pool = embeddedTestPool(url);
    try {
      const c = await pool.connect();
      await c.query("BEGIN");
      await c.query("CREATE TABLE left_open (x int)");
      c.release(); // no COMMIT: a caller's bug
      expect((await client.countTasks()).exact).toBe(true); // the database still answers
      const r = await pool.query("SELECT to_regclass('left_open') IS NULL AS gone");
      expect(r.rows[0].gone).toBe(true);
    } finally {
      await pool.end();
    }
  });

  it("a second client on the same URL shares the instance and the doorbell: waitForCompletion hears the worker", async () => {
    const other = new SkiplockClient({ databaseUrl: url, logger: quiet, pollInterval: 60 });
    const worker = new Worker({ databaseUrl: url, logger: quiet, pollInterval: 60, tasks: { echo: (x: string) => x } });
    await worker.start();
    try {
      const t = await other.createTask("echo", ["hi"]);
      expect((await client.waitForCompletion(t.id, { timeout: 30, pollInterval: 60 }))?.result).toBe("hi");
      expect((await other.getTask(t.id))?.status).toBe("COMPLETED");
    } finally {
      await worker.stop();
      await other.close();
    }
  });
});

describe("a directory", () => {
  const dir = mkdtempSync(join(tmpdir(), "skiplock-embedded-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is created, keeps its tasks across a close, and its lock file goes with the last close", async () => {
    const db = join(dir, "keep");
    const url = `pglite:${db}`;
    const a = new SkiplockClient({ databaseUrl: url, logger: quiet });
    await a.migrate();
    const t = await a.createTask("later", [], { delay: 3600 });
    expect(existsSync(join(db, LOCK_FILE))).toBe(true);
    await a.close();
    expect(existsSync(join(db, LOCK_FILE))).toBe(false);
    const b = new SkiplockClient({ databaseUrl: url, logger: quiet });
    try {
      expect((await b.getTask(t.id))?.status).toBe("PENDING");
    } finally {
      await b.close();
    }
  });

  it("a second process gets EmbeddedDatabaseLockedError naming the directory and the holder; a dead holder's lock is taken over", async () => {
    const db = join(dir, "shared");
    const url = `pglite:${db}`;
    const holder = spawnProc(process.execPath, [
      "--input-type=module",
      "-e",
      `const { SkiplockClient } = await import(${JSON.stringify(DIST_INDEX)});
       const c = new SkiplockClient({ databaseUrl: ${JSON.stringify(url)} });
       await c.migrate();
       await c.countTasks();
       process.stdout.write("holding\\n");
       setInterval(() => {}, 1000);`,
    ]);
    try {
      await holder.waitForOutput(/holding/, 60_000);
      const mine = new SkiplockClient({ databaseUrl: url, logger: quiet });
      const err = await mine.countTasks().catch((e: unknown) => e);
      await mine.close();
      expect(err).toBeInstanceOf(EmbeddedDatabaseLockedError);
      expect(err).toMatchObject({ directory: db, holderPid: holder.child.pid, code: "EMBEDDED_DATABASE_LOCKED" });
      expect((err as Error).message).toContain(db);
      expect((err as Error).message).toContain(String(holder.child.pid));
    } finally {
      await stopProc(holder, "SIGKILL"); // no clean close: its lock file stays, naming a dead process
    }
    expect(existsSync(join(db, LOCK_FILE))).toBe(true);
    const after = new SkiplockClient({ databaseUrl: url, logger: quiet });
    try {
      expect((await after.countTasks()).totals.PENDING).toBe(0);
    } finally {
      await after.close();
    }
  });

  it("in one process, every share of a directory is the same instance", async () => {
    const url = `pglite:${join(dir, "one")}`;
    const a = acquireEmbedded(url);
    const b = acquireEmbedded(`pglite:${join(dir, "x", "..", "one")}`);
    try {
      expect(await a.open()).toBe(await b.open());
    } finally {
      await a.release();
      await b.release();
    }
  });
});

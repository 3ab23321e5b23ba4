// @ts-check
// A PostgreSQL server and a Redis server of the chaos run's own, on free ports of 127.0.0.1, which it may stop,
// crash and start again without touching the shared servers (5432, 6379).
import { execFile, spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, createWriteStream, mkdirSync, readdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import pg from "pg";

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @returns {Promise<number>} a TCP port free on 127.0.0.1 right now */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Polls `check` until it returns true, at most `timeoutMs`; throws naming `what` after that.
 * @param {string} what
 * @param {() => Promise<boolean>} check
 * @param {number} timeoutMs
 * @param {number} [everyMs]
 */
export async function waitUntil(what, check, timeoutMs, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The newest installed PostgreSQL's bin directory (Debian layout). */
function postgresBin() {
  const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error("no PostgreSQL under /usr/lib/postgresql");
  return join("/usr/lib/postgresql", versions[0], "bin");
}

/**
 * Postgres refuses to run as root: as root, initdb and postgres run as the `postgres` user.
 * @returns {{ uid?: number, gid?: number }}
 */
function postgresUser() {
  if (process.getuid?.() !== 0) return {};
  const id = (/** @type {string} */ flag) =>
    Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
  return { uid: id("-u"), gid: id("-g") };
}

export class PrivatePostgres {
  port = 0;
  /** @type {import("node:child_process").ChildProcess | null} */
  #server = null;
  /** @type {Promise<void>} */
  #exited = Promise.resolve();
  #bin = postgresBin();
  #as = postgresUser();

  /**
   * @param {string} dir an empty directory for the data and the socket
   * @param {string} logFile where the server's output goes
   */
  constructor(dir, logFile) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o700);
    if (this.#as.uid !== undefined && this.#as.gid !== undefined) chownSync(dir, this.#as.uid, this.#as.gid);
    this.log = createWriteStream(logFile, { flags: "a" });
  }

  get url() {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  get running() {
    return this.#server !== null;
  }

  /** initdb (fsync stays on in the server: the run measures a realistic commit), then start on a free port. */
  async init() {
    const r = spawnSync(
      join(this.#bin, "initdb"),
      ["-D", join(this.dir, "data"), "-U", "postgres", "-A", "trust", "--no-sync"],
      {
        encoding: "utf8",
        cwd: this.dir,
        ...this.#as,
      },
    );
    if (r.status !== 0) throw new Error(`initdb failed: ${r.stderr}`);
    this.port = await freePort();
    await this.start();
  }

  /** Starts the server (again) on the same port and data directory; resolves once it answers queries. */
  async start() {
    if (this.#server) return;
    const args = [
      "-D",
      join(this.dir, "data"),
      "-p",
      String(this.port),
      "-k",
      this.dir,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "max_connections=200",
    ];
    const server = spawn(join(this.#bin, "postgres"), args, {
      stdio: ["ignore", "pipe", "pipe"],
      cwd: this.dir,
      ...this.#as,
    });
    server.stdout?.pipe(this.log, { end: false });
    server.stderr?.pipe(this.log, { end: false });
    this.#server = server;
    this.#exited = new Promise((resolve) => server.on("exit", () => resolve()));
    await waitUntil("the private Postgres to accept queries", () => this.#answers(), 60_000);
  }

  async #answers() {
    const c = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 2000 });
    c.on("error", () => {});
    try {
      await c.connect();
      await c.query("SELECT 1");
      return true;
    } finally {
      await c.end().catch(() => {});
    }
  }

  /**
   * "fast": SIGINT, open transactions roll back, a clean shutdown. "immediate": SIGQUIT, no checkpoint, crash
   * recovery at the next start (like a power cut, less the lost disk cache). Resolves once the postmaster exited.
   * @param {"fast" | "immediate"} mode
   */
  async stop(mode) {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    server.kill(mode === "fast" ? "SIGINT" : "SIGQUIT");
    const gone = await Promise.race([this.#exited.then(() => true), sleep(30_000).then(() => false)]);
    if (!gone) {
      server.kill("SIGKILL");
      await this.#exited;
    }
  }

  /** Stops at once; for cleanup. */
  async destroy() {
    await this.stop("immediate").catch(() => {});
    this.log.end();
  }

  /** Last resort on process exit: synchronous, no waiting. */
  killNow() {
    this.#server?.kill("SIGQUIT");
  }
}

export class PrivateRedis {
  port = 0;
  /** @type {import("node:child_process").ChildProcess | null} */
  #server = null;
  /** @type {Promise<void>} */
  #exited = Promise.resolve();

  /** @param {string} logFile */
  constructor(logFile) {
    this.log = createWriteStream(logFile, { flags: "a" });
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running() {
    return this.#server !== null;
  }

  async init() {
    this.port = await freePort();
    await this.start();
  }

  /** Starts redis-server (again) on the same port, nothing persisted; resolves once it answers PING. */
  async start() {
    if (this.#server) return;
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
    const server = spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
    server.stdout?.pipe(this.log, { end: false });
    server.stderr?.pipe(this.log, { end: false });
    this.#server = server;
    this.#exited = new Promise((resolve) => server.on("exit", () => resolve()));
    await waitUntil("the private Redis to answer PING", async () => (await this.cli("PING")) === "PONG", 30_000);
  }

  /**
   * One redis-cli command against this server; resolves its output, trimmed.
   * @param {...string} args
   * @returns {Promise<string>}
   */
  cli(...args) {
    return new Promise((resolve, reject) => {
      execFile("redis-cli", ["-h", "127.0.0.1", "-p", String(this.port), ...args], { timeout: 5000 }, (err, stdout) =>
        err ? reject(err) : resolve(stdout.trim()),
      );
    });
  }

  /** SHUTDOWN NOSAVE, or SIGKILL when it does not go; resolves once it exited. */
  async stop() {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    await this.cli("SHUTDOWN", "NOSAVE").catch(() => {});
    const gone = await Promise.race([this.#exited.then(() => true), sleep(5_000).then(() => false)]);
    if (!gone) {
      server.kill("SIGKILL");
      await this.#exited;
    }
  }

  async destroy() {
    const server = this.#server;
    this.#server = null;
    server?.kill("SIGKILL");
    if (server) await this.#exited;
    this.log.end();
  }

  killNow() {
    this.#server?.kill("SIGKILL");
  }
}

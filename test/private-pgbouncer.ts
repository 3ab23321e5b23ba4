// A PgBouncer of the test's own, in transaction pooling mode, on a free port in front of a Postgres (CI's, or a
// private one): an ini and a userlist in a temporary directory, a small server pool so that clients really share
// server connections, stopped (and its directory removed) by stop().
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./helpers.js";
import { findTool } from "./system-tools.js";

/** PgBouncer refuses to run as root: as root, it runs as the `postgres` user. */
const AS_POSTGRES: { uid?: number; gid?: number } =
  process.getuid?.() === 0
    ? {
        uid: Number(spawnSync("id", ["-u", "postgres"]).stdout.toString().trim()),
        gid: Number(spawnSync("id", ["-g", "postgres"]).stdout.toString().trim()),
      }
    : {};

export interface PrivatePgBouncerOptions {
  /** The Postgres behind it, as a URL; the user and database are taken from it. */
  targetUrl: string;
  /** Server connections per user and database; default 4. */
  poolSize?: number;
  /** Default "transaction". */
  poolMode?: "transaction" | "session" | "statement";
  maxClientConn?: number;
}

export class PrivatePgBouncer {
  port = 0;
  readonly dir: string;
  readonly #options: PrivatePgBouncerOptions;
  #process: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();
  #output = "";

  constructor(options: PrivatePgBouncerOptions) {
    this.#options = options;
    this.dir = mkdtempSync(join(tmpdir(), "skiplock-pgbouncer-"));
    chmodSync(this.dir, 0o700);
    if (AS_POSTGRES.uid !== undefined) chownSync(this.dir, AS_POSTGRES.uid, AS_POSTGRES.gid!);
  }

  /** The target's URL with PgBouncer's host and port in its place: same user, same database. */
  get url(): string {
    const u = new URL(this.#options.targetUrl);
    u.hostname = "127.0.0.1";
    u.port = String(this.port);
    return u.toString();
  }

  /** What PgBouncer printed so far (its log goes to stderr), for a failing test's message. */
  get output(): string {
    return this.#output;
  }

  async start(): Promise<void> {
    const bin = findTool("pgbouncer");
    if (!bin) throw new Error("pgbouncer is not installed");
    const target = new URL(this.#options.targetUrl);
    const user = decodeURIComponent(target.username || "postgres");
    const database = decodeURIComponent(target.pathname.slice(1) || "postgres");
    this.port = await freePort();
    const ini = join(this.dir, "pgbouncer.ini");
    const own = (path: string) => {
      if (AS_POSTGRES.uid !== undefined) chownSync(path, AS_POSTGRES.uid, AS_POSTGRES.gid!);
    };
    writeFileSync(join(this.dir, "userlist.txt"), `"${user}" ""\n`);
    own(join(this.dir, "userlist.txt"));
    writeFileSync(
      ini,
      [
        "[databases]",
        `${database} = host=${target.hostname} port=${target.port || 5432} dbname=${database} user=${user}`,
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        `listen_port = ${this.port}`,
        "unix_socket_dir =",
        "auth_type = trust",
        `auth_file = ${join(this.dir, "userlist.txt")}`,
        `pool_mode = ${this.#options.poolMode ?? "transaction"}`,
        `default_pool_size = ${this.#options.poolSize ?? 4}`,
        "min_pool_size = 0",
        "reserve_pool_size = 0",
        `max_client_conn = ${this.#options.maxClientConn ?? 500}`,
        "ignore_startup_parameters = extra_float_digits",
        "server_reset_query =",
        "logfile =",
        "pidfile =",
        "log_connections = 0",
        "log_disconnections = 0",
        "",
      ].join("\n"),
    );
    own(ini);
    const child = spawn(bin, [ini], { stdio: ["ignore", "pipe", "pipe"], cwd: this.dir, ...AS_POSTGRES });
    this.#process = child;
    child.stdout?.on("data", (d: Buffer) => (this.#output += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (this.#output += d.toString()));
    this.#exited = new Promise((resolve) => child.on("exit", () => resolve()));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`pgbouncer exited at start:\n${this.#output}`);
      const c = new pg.Client({ connectionString: this.url });
      c.on("error", () => {});
      try {
        await c.connect();
        await c.query("SELECT 1");
        return;
      } catch (err) {
        if (Date.now() > deadline)
          throw new Error(`pgbouncer did not answer: ${String(err)}\n${this.#output}`, { cause: err });
      } finally {
        await c.end().catch(() => {});
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops PgBouncer (SIGINT: it closes every connection at once) and removes its directory. */
  async stop(): Promise<void> {
    const p = this.#process;
    this.#process = null;
    if (p && p.exitCode === null) {
      p.kill("SIGINT");
      await this.#exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// A PostgreSQL server of the test's own, in a temporary directory on a free port, which the test may stop and start
// again without touching CI's server or other test files.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort, waitFor } from "./helpers.js";

const BIN = (() => {
  const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
  return join("/usr/lib/postgresql", versions[0]!, "bin");
})();

/** Postgres (and PgBouncer) refuse to run as root: as root, their processes run as the `postgres` user. */
export const AS_POSTGRES: { uid?: number; gid?: number } =
  process.getuid?.() === 0
    ? {
        uid: Number(spawnSync("id", ["-u", "postgres"]).stdout.toString().trim()),
        gid: Number(spawnSync("id", ["-g", "postgres"]).stdout.toString().trim()),
      }
    : {};

export class PrivatePostgres {
  port = 0;
  readonly dir: string;
  #server: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "skiplock-pg-"));
    chmodSync(this.dir, 0o700);
    if (AS_POSTGRES.uid !== undefined) chownSync(this.dir, AS_POSTGRES.uid, AS_POSTGRES.gid!);
  }

  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  async init(): Promise<void> {
    const args = ["-D", join(this.dir, "data"), "-U", "postgres", "-A", "trust", "--no-sync"];
    const r = spawnSync(join(BIN, "initdb"), args, { encoding: "utf8", cwd: this.dir, ...AS_POSTGRES });
    if (r.status !== 0) throw new Error(`initdb failed: ${r.stderr}`);
    this.port = await freePort();
    await this.start();
  }

  /** Starts the server (again) on the same port and data directory; resolves once it accepts queries. */
  async start(): Promise<void> {
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
      "fsync=off",
      "-c",
      "max_connections=100",
    ];
    const server = spawn(join(BIN, "postgres"), args, { stdio: "ignore", cwd: this.dir, ...AS_POSTGRES });
    this.#server = server;
    this.#exited = new Promise((resolve) => server.on("exit", () => resolve()));
    await waitFor(
      "the private Postgres to accept queries",
      async () => {
        const c = new pg.Client({ connectionString: this.url });
        c.on("error", () => {});
        try {
          await c.connect();
          await c.query("SELECT 1");
          return true;
        } catch {
          return false;
        } finally {
          await c.end().catch(() => {});
        }
      },
      30_000,
      100,
    );
  }

  /** Stops the server: "fast" (SIGINT, clean) or "immediate" (SIGQUIT, like a crash). Resolves once it exited. */
  async stop(mode: "fast" | "immediate" = "fast"): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    server.kill(mode === "fast" ? "SIGINT" : "SIGQUIT");
    await this.#exited;
  }

  async destroy(): Promise<void> {
    await this.stop("immediate");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// @ts-check
// Several hosts on one machine: Linux network namespaces joined by veth links. One "database host" runs a private
// Postgres and a private Redis; each "worker host" reaches them only over its own link, which can be cut
// (`ip link set … down`) and restored. Shared by test/netns.test.ts and bench/scale/run.js. Needs root (or
// CAP_NET_ADMIN and CAP_SYS_ADMIN) and `ip`.
//
//   worker host 1 ── eth0 ═══ h1 ─┐
//   worker host 2 ── eth0 ═══ h2 ─┤ br0 10.77.0.1/24 (Postgres)     database host
//                                 └ (local) rd0 10.77.1.1/24 (Redis) ═══ rd1
//
// Redis listens on an address of its own, on a veth pair inside the database host: removing that address cuts Redis
// off (packets for it are dropped: the host does not forward) while Postgres stays reachable. The kernel this was
// built on has no tc qdiscs or actions and the machine no netfilter tools, so a port filter was not an option.
//
// The process that builds the lab stays in its own namespace and reaches Postgres through its unix socket, a file
// in a temporary directory: nothing is added to the caller's network, and parallel labs never share an address.
// Every name carries a random id, so labs of parallel runs do not clash.
import { execFile, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

export const DB_ADDRESS = "10.77.0.1";
export const REDIS_ADDRESS = "10.77.1.1";
/** Ports inside the database host's namespace: nothing else listens there. */
const PG_PORT = 5432;
const REDIS_PORT = 6379;

/** @param {number} ms */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `ip` with `args`; throws with its stderr when it fails.
 * @param {string[]} args
 */
export function ip(...args) {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")} failed: ${(r.stderr || r.error?.message || "").trim()}`);
  return r.stdout;
}

/**
 * Why network namespaces cannot be built here (not root, no `ip`, a kernel without veth or bridge), or null when a
 * probe namespace with a bridge and a veth pair could be made and removed.
 * @returns {string | null}
 */
export function netnsUnavailable() {
  const probe = `skprobe${randomBytes(3).toString("hex")}`;
  try {
    ip("netns", "add", probe);
  } catch (err) {
    return `cannot create a network namespace (${/** @type {Error} */ (err).message})`;
  }
  try {
    ip("-n", probe, "link", "add", "br0", "type", "bridge");
    ip("-n", probe, "link", "add", "va", "type", "veth", "peer", "name", "vb");
    return null;
  } catch (err) {
    return `cannot create a bridge or veth pair in a network namespace (${/** @type {Error} */ (err).message})`;
  } finally {
    spawnSync("ip", ["netns", "del", probe]);
  }
}

/** The newest installed PostgreSQL's bin directory (Debian layout). */
function postgresBin() {
  const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error("no PostgreSQL under /usr/lib/postgresql");
  return join("/usr/lib/postgresql", versions[0], "bin");
}

/**
 * Polls `check` until it returns true, at most `timeoutMs`; throws naming `what` after that.
 * @param {string} what
 * @param {() => Promise<boolean>} check
 * @param {number} timeoutMs
 */
async function waitUntil(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

export class NetnsLab {
  /** @type {Set<import("node:child_process").ChildProcess>} */
  #spawned = new Set();
  #destroyed = false;

  /** @param {number} workerHosts how many worker hosts (namespaces) to build */
  constructor(workerHosts) {
    this.id = randomBytes(3).toString("hex");
    this.db = `sk${this.id}db`;
    /** @type {string[]} the worker hosts' namespace names, host 1 first */
    this.hosts = Array.from({ length: workerHosts }, (_, i) => `sk${this.id}w${i + 1}`);
    this.dir = mkdtempSync(join(tmpdir(), "skiplock-netns-"));
    chmodSync(this.dir, 0o711); // the postgres user must reach its data directory inside
    this.log = join(this.dir, "servers.log");
    /** @type {string[]} extra `name=value` settings for the lab's Postgres (before startServers) */
    this.postgresSettings = ["fsync=off"];
  }

  /** Workers' view of Postgres: over their link. */
  get databaseUrl() {
    return `postgres://postgres@${DB_ADDRESS}:${PG_PORT}/postgres`;
  }

  /** Workers' view of Redis: over their link, then the database host's own Redis address. */
  get redisUrl() {
    return `redis://${REDIS_ADDRESS}:${REDIS_PORT}`;
  }

  /** The caller's view of Postgres: its unix socket, from outside every namespace of the lab. */
  get localDatabaseUrl() {
    return `postgres://postgres@localhost:${PG_PORT}/postgres?host=${encodeURIComponent(this.#pgDir)}`;
  }

  get #pgDir() {
    return join(this.dir, "pg");
  }

  /** Builds the namespaces and links; on failure removes what it built and throws. */
  build() {
    try {
      ip("netns", "add", this.db);
      ip("-n", this.db, "link", "set", "lo", "up");
      ip("-n", this.db, "link", "add", "br0", "type", "bridge");
      ip("-n", this.db, "addr", "add", `${DB_ADDRESS}/24`, "dev", "br0");
      ip("-n", this.db, "link", "set", "br0", "up");
      ip("-n", this.db, "link", "add", "rd0", "type", "veth", "peer", "name", "rd1");
      ip("-n", this.db, "addr", "add", `${REDIS_ADDRESS}/24`, "dev", "rd0");
      ip("-n", this.db, "link", "set", "rd1", "up");
      ip("-n", this.db, "link", "set", "rd0", "up");
      this.hosts.forEach((ns, i) => {
        ip("netns", "add", ns);
        ip("-n", ns, "link", "set", "lo", "up");
        // Made inside the database host with its peer created straight in the worker host: no name ever exists in
        // the caller's namespace.
        ip("-n", this.db, "link", "add", `h${i + 1}`, "type", "veth", "peer", "name", "eth0", "netns", ns);
        ip("-n", this.db, "link", "set", `h${i + 1}`, "master", "br0");
        ip("-n", this.db, "link", "set", `h${i + 1}`, "up");
        ip("-n", ns, "addr", "add", `10.77.0.${11 + i}/24`, "dev", "eth0");
        ip("-n", ns, "link", "set", "eth0", "up");
        ip("-n", ns, "route", "add", "10.77.1.0/24", "via", DB_ADDRESS);
      });
    } catch (err) {
      this.#removeNamespaces();
      throw err;
    }
    return this;
  }

  /** Cuts worker host `n` (1-based) off: its link's port on the database host goes down, packets are dropped. */
  cutHost(/** @type {number} */ n) {
    ip("-n", this.db, "link", "set", `h${n}`, "down");
  }

  restoreHost(/** @type {number} */ n) {
    ip("-n", this.db, "link", "set", `h${n}`, "up");
  }

  /**
   * Takes Redis's address away: packets to it are no longer for this host, which does not forward, so every one is
   * dropped; Postgres stays reachable. (Setting `rd0` down is not enough: its address stays local.) Redis's listening
   * socket stays bound to the address and answers again once it is back.
   */
  cutRedis() {
    ip("-n", this.db, "addr", "del", `${REDIS_ADDRESS}/24`, "dev", "rd0");
  }

  restoreRedis() {
    ip("-n", this.db, "addr", "add", `${REDIS_ADDRESS}/24`, "dev", "rd0");
  }

  /**
   * Spawns `command args` inside namespace `ns`: `ip netns exec` enters it and execs the command in the same
   * process, so the child's pid, signals and IPC channel are the command's own.
   * @param {string} ns
   * @param {string} command
   * @param {string[]} args
   * @param {import("node:child_process").SpawnOptions} [options]
   */
  spawnIn(ns, command, args, options = {}) {
    const child = spawn("ip", ["netns", "exec", ns, command, ...args], options);
    this.#spawned.add(child);
    child.on("exit", () => this.#spawned.delete(child));
    return child;
  }

  /** initdb, then Postgres (as the postgres user when run as root) and Redis inside the database host. */
  async startServers() {
    const bin = postgresBin();
    const dir = this.#pgDir;
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o700);
    const root = process.getuid?.() === 0;
    if (root) {
      const id = (/** @type {string} */ flag) =>
        Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
      chownSync(dir, id("-u"), id("-g"));
    }
    // Postgres refuses to run as root: setpriv drops to the postgres user (after `ip netns exec` entered the host).
    /** @type {(command: string, args: string[]) => [string, string[]]} */
    const asPostgres = (command, args) =>
      root
        ? ["setpriv", ["--reuid=postgres", "--regid=postgres", "--clear-groups", command, ...args]]
        : [command, args];
    const data = join(dir, "data");
    const [initdb, initdbArgs] = asPostgres(join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust"]);
    const made = spawnSync(initdb, [...initdbArgs, "--no-sync"], { encoding: "utf8", cwd: dir });
    if (made.status !== 0) throw new Error(`initdb failed: ${made.stderr}`);
    // Trust from the lab's subnets: the worker hosts connect over their links.
    appendFileSync(join(data, "pg_hba.conf"), "host all all 10.77.0.0/16 trust\n");
    const [postgres, postgresArgs] = asPostgres(join(bin, "postgres"), [
      ...["-D", data, "-p", String(PG_PORT), "-k", dir, "-c", `listen_addresses=${DB_ADDRESS}`],
      ...["-c", "max_connections=200", ...this.postgresSettings.flatMap((s) => ["-c", s])],
    ]);
    const server = this.spawnIn(this.db, postgres, postgresArgs, { stdio: ["ignore", "pipe", "pipe"], cwd: dir });
    this.#capture(server, "postgres");
    await waitUntil("the lab's Postgres to accept queries", () => this.#postgresAnswers(), 60_000);

    const redisArgs = ["--port", String(REDIS_PORT), "--bind", REDIS_ADDRESS, "--protected-mode", "no"];
    redisArgs.push("--save", "", "--appendonly", "no"); // no password: only the lab's hosts reach it
    const redis = this.spawnIn(this.db, "redis-server", redisArgs, { stdio: ["ignore", "pipe", "pipe"] });
    this.#capture(redis, "redis");
    await waitUntil("the lab's Redis to answer PING", () => this.#redisAnswers(), 30_000);
  }

  /**
   * @param {import("node:child_process").ChildProcess} child
   * @param {string} name
   */
  #capture(child, name) {
    const write = (/** @type {Buffer} */ d) => appendFileSync(this.log, `[${name}] ${d.toString()}`);
    child.stdout?.on("data", write);
    child.stderr?.on("data", write);
  }

  async #postgresAnswers() {
    const c = new pg.Client({ connectionString: this.localDatabaseUrl, connectionTimeoutMillis: 2000 });
    c.on("error", () => {});
    try {
      await c.connect();
      await c.query("SELECT 1");
      return true;
    } finally {
      await c.end().catch(() => {});
    }
  }

  /** @returns {Promise<boolean>} */
  #redisAnswers() {
    return new Promise((resolve) => {
      execFile(
        "ip",
        ["netns", "exec", this.db, "redis-cli", "-h", REDIS_ADDRESS, "-p", String(REDIS_PORT), "PING"],
        { timeout: 5000 },
        (err, stdout) => resolve(!err && stdout.trim() === "PONG"),
      );
    });
  }

  /** The servers' log, for a failure message. */
  get logFile() {
    return this.log;
  }

  /** Kills what the lab started, removes its namespaces and directory. Safe to call twice, or after a failed build. */
  async destroy() {
    if (this.#destroyed) return;
    this.#destroyed = true;
    const exits = [...this.#spawned].map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined);
          child.on("exit", resolve);
          child.kill("SIGKILL");
        }),
    );
    await Promise.race([Promise.all(exits), sleep(10_000)]);
    this.#removeNamespaces();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Last resort on process exit: synchronous, no waiting. */
  killNow() {
    for (const child of this.#spawned) child.kill("SIGKILL");
    this.#removeNamespaces();
    rmSync(this.dir, { recursive: true, force: true });
  }

  #removeNamespaces() {
    for (const ns of [...this.hosts, this.db]) spawnSync("ip", ["netns", "del", ns]);
  }
}

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { clientInternals } from "../src/client.js";
import type { SkiplockClient } from "../src/index.js";
import type { RedisNotifier } from "../src/notify/redis.js";
import { freePort, waitFor } from "./helpers.js";

/**
 * A private CA, a certificate for 127.0.0.1 signed by it (for the servers) and a client certificate, made by openssl
 * in `dir`: ca.crt, server.crt/.key, client.crt/.key.
 */
export function makeTestCertificates(dir: string): void {
  const run = (args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed:\n${r.stderr}`);
  };
  writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  const subject = (cn: string) => ["-subj", `/CN=${cn}`];
  run([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "1",
    ...subject("skiplock test CA"),
  ]);
  for (const name of ["server", "client"]) {
    run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, ...subject(name)]);
    const ext = name === "server" ? ["-extfile", "server.ext"] : [];
    run([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      "1",
      ...ext,
    ]);
  }
}

/** Why this redis-server cannot serve TLS (built without it), or null when it can. */
export function redisWithoutTls(): string | null {
  const r = spawnSync("redis-server", ["--port", "0", "--tls-port", "1", "--tls-cert-file", "/nonexistent"], {
    encoding: "utf8",
    timeout: 5000,
  });
  const out = `${r.stdout}${r.stderr}`;
  if (/Bad directive|wrong number of arguments/i.test(out) && /tls/i.test(out)) {
    console.warn("skipped: redis-server was built without TLS");
    return "redis-server was built without TLS";
  }
  return null;
}

/** Client-side TLS options for the servers made with makeTestCertificates, or undefined for plain TCP. */
let clientTls: { ca: string } | undefined;

/** A program of the group, started in the test's temp dir, with its output kept for a failure's message. */
class ServerProc {
  readonly port: number;
  #proc: ChildProcess | null = null;
  #out = "";

  constructor(
    port: number,
    readonly program: string,
    readonly args: string[],
  ) {
    this.port = port;
  }

  get running(): boolean {
    return this.#proc !== null && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  async start(): Promise<void> {
    const proc = spawn(this.program, this.args, { stdio: ["ignore", "pipe", "pipe"] });
    this.#proc = proc;
    proc.stdout!.on("data", (d: Buffer) => (this.#out += d.toString()));
    proc.stderr!.on("data", (d: Buffer) => (this.#out += d.toString()));
    const exited = new Promise<never>((_, reject) =>
      proc.on("exit", () => reject(new Error(`${this.program} exited:\n${this.#out}`))),
    );
    exited.catch(() => {});
    // Up once it answers PING.
    await Promise.race([waitFor(`${this.program} on ${this.port}`, () => ping(this.port), 15_000, 50), exited]);
  }

  async kill(): Promise<void> {
    const proc = this.#proc;
    if (!proc || !this.running) return;
    const exited = new Promise((r) => proc.on("exit", r));
    proc.kill("SIGKILL");
    await exited;
  }
}

function socketTo(port: number) {
  const socket = { port, host: "127.0.0.1", reconnectStrategy: false as const, connectTimeout: 1000 };
  return clientTls ? { ...socket, tls: true as const, ca: clientTls.ca } : socket;
}

async function ping(port: number): Promise<boolean> {
  const c = createClient({ socket: socketTo(port) });
  c.on("error", () => {});
  try {
    await c.connect();
    return (await c.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    if (c.isOpen) c.destroy();
  }
}

/** Runs one command on the server at `port`. */
export async function redisCommand(port: number, args: string[]): Promise<unknown> {
  const c = createClient({ socket: socketTo(port), RESP: 2 });
  c.on("error", () => {});
  await c.connect();
  try {
    return await c.sendCommand(args);
  } finally {
    c.destroy();
  }
}

/**
 * A Redis master, one replica and three sentinels watching them under the name `mymaster`, on free ports, started in
 * a temp dir of the test's own (sentinels rewrite their config file). The sentinels judge a master down after one
 * second, so a failover takes a few seconds.
 */
export class PrivateSentinelGroup {
  readonly masterName = "mymaster";
  readonly servers: ServerProc[] = [];
  readonly sentinels: ServerProc[] = [];
  readonly dir = mkdtempSync(join(tmpdir(), "skiplock-sentinel-"));

  /** `tls`: every server and sentinel speaks TLS only (certificates from makeTestCertificates in `dir`). */
  constructor(readonly options: { tls?: boolean } = {}) {}

  /** The URL skiplock takes for this group. */
  get url(): string {
    const scheme = this.options.tls ? "rediss+sentinel" : "redis+sentinel";
    return `${scheme}://${this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(",")}/${this.masterName}`;
  }

  /** The CA's PEM, with `tls`. */
  get ca(): string {
    return readFileSync(join(this.dir, "ca.crt"), "utf8");
  }

  /** TLS directives for a server or sentinel: TLS on `port` only, to clients and between the servers. */
  #tlsArgs(port: number): string[] {
    if (!this.options.tls) return ["--port", String(port)];
    const f = (name: string) => join(this.dir, name);
    return [
      ...["--port", "0", "--tls-port", String(port), "--tls-replication", "yes", "--tls-auth-clients", "no"],
      ...["--tls-cert-file", f("server.crt"), "--tls-key-file", f("server.key"), "--tls-ca-cert-file", f("ca.crt")],
    ];
  }

  async start(): Promise<void> {
    if (this.options.tls) {
      makeTestCertificates(this.dir);
      clientTls = { ca: this.ca };
    }
    const [a, b] = [await freePort(), await freePort()];
    const server = (port: number, extra: string[]) =>
      new ServerProc(port, "redis-server", [
        ...this.#tlsArgs(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        this.dir,
        ...extra,
      ]);
    this.servers.push(server(a, []), server(b, ["--replicaof", "127.0.0.1", String(a)]));
    for (const s of this.servers) await s.start();
    await waitFor("the replica in sync", async () => await this.#replicaInSync(b), 15_000, 50);
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const conf = join(this.dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${this.dir}`,
          `sentinel monitor ${this.masterName} 127.0.0.1 ${a} 2`,
          `sentinel down-after-milliseconds ${this.masterName} 1000`,
          `sentinel failover-timeout ${this.masterName} 5000`,
          `sentinel parallel-syncs ${this.masterName} 1`,
          "",
        ].join("\n"),
      );
      // Directives after the file override it: with TLS, port 0 and the TLS port.
      const s = new ServerProc(port, "redis-sentinel", [conf, ...(this.options.tls ? this.#tlsArgs(port) : [])]);
      await s.start();
      this.sentinels.push(s);
    }
    await this.watching();
  }

  /** Resolves once every sentinel knows the replica (a failover needs one) and the other sentinels (a quorum). */
  async watching(): Promise<void> {
    await waitFor(
      "the sentinels to know the replica and each other",
      async () => {
        for (const s of this.sentinels) {
          const replicas = (await redisCommand(s.port, ["SENTINEL", "REPLICAS", this.masterName])) as unknown[];
          const peers = (await redisCommand(s.port, ["SENTINEL", "SENTINELS", this.masterName])) as unknown[];
          if (replicas.length < 1 || peers.length < 2) return false;
        }
        return true;
      },
      30_000,
      100,
    );
  }

  /**
   * Makes the sentinels name the other server as the master without a failover: it stops replicating, and every
   * sentinel is told to watch it instead. The old master keeps its clients, as one cut off from the sentinels would.
   * `rejoin()` then makes the old master its replica again.
   */
  async moveBehindTheClientsBacks(): Promise<{ from: number; to: number }> {
    const from = await this.masterPort();
    const to = this.servers.find((s) => s.port !== from)!.port;
    await redisCommand(to, ["REPLICAOF", "NO", "ONE"]);
    for (const s of this.sentinels) {
      await redisCommand(s.port, ["SENTINEL", "REMOVE", this.masterName]);
      await redisCommand(s.port, ["SENTINEL", "MONITOR", this.masterName, "127.0.0.1", String(to), "2"]);
      await redisCommand(s.port, ["SENTINEL", "SET", this.masterName, "down-after-milliseconds", "1000"]);
      await redisCommand(s.port, ["SENTINEL", "SET", this.masterName, "failover-timeout", "5000"]);
    }
    return { from, to };
  }

  /** The server `from` replicates `to` again, and the sentinels know it. */
  async rejoin(from: number, to: number): Promise<void> {
    await redisCommand(from, ["REPLICAOF", "127.0.0.1", String(to)]);
    await waitFor("the old master in sync as a replica", () => this.#replicaInSync(from), 15_000, 50);
    await this.watching();
  }

  async #replicaInSync(port: number): Promise<boolean> {
    const info = String(await redisCommand(port, ["INFO", "replication"]));
    return /master_link_status:up/.test(info);
  }

  /** The master's port as the first sentinel that answers says. */
  async masterPort(): Promise<number> {
    for (const s of this.sentinels) {
      if (!s.running) continue;
      const r = (await redisCommand(s.port, ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", this.masterName])) as string[];
      return Number(r[1]);
    }
    throw new Error("no sentinel running");
  }

  server(port: number): ServerProc {
    const s = this.servers.find((x) => x.port === port);
    if (!s) throw new Error(`no server on ${port}`);
    return s;
  }

  /** Asks the sentinels for a failover and resolves once they name the other server as the master. */
  async failover(): Promise<{ from: number; to: number }> {
    const from = await this.masterPort();
    const to = this.servers.find((s) => s.port !== from)!.port;
    await waitFor("the replica in sync before the failover", () => this.#replicaInSync(to), 15_000, 50);
    await redisCommand(this.sentinels[0]!.port, ["SENTINEL", "FAILOVER", this.masterName]);
    await waitFor("the sentinels to name the new master", async () => (await this.masterPort()) === to, 30_000, 50);
    return { from, to };
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sentinels, ...this.servers].map((s) => s.kill()));
    if (this.options.tls) clientTls = undefined;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Waits until a client publishes its wake-ups to the master on `port`. After a failover each connection finds the
 * new master on its own schedule (at its loss, or its next check of the sentinels); a wake-up published before the
 * client's did goes to the old master and is lost (a worker's poll would cover it; the tests poll every 600 s).
 */
export async function clientPublishesTo(client: SkiplockClient, port: number): Promise<void> {
  const notifier = clientInternals(client).notifier as RedisNotifier;
  await waitFor(
    `the client's publisher on the master at port ${port}`,
    () => notifier.connected && (notifier.publisherAddress?.endsWith(`:${port}`) ?? false),
    45_000,
  );
}

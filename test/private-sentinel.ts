import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";
import { freePort, waitFor } from "./helpers.js";

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

async function ping(port: number): Promise<boolean> {
  const c = createClient({ socket: { port, host: "127.0.0.1", reconnectStrategy: false, connectTimeout: 1000 } });
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
  const c = createClient({ socket: { port, host: "127.0.0.1", reconnectStrategy: false }, RESP: 2 });
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

  /** The URL skiplock takes for this group. */
  get url(): string {
    return `redis+sentinel://${this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(",")}/${this.masterName}`;
  }

  async start(): Promise<void> {
    const [a, b] = [await freePort(), await freePort()];
    const server = (port: number, extra: string[]) =>
      new ServerProc(port, "redis-server", [
        "--port",
        String(port),
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
      const s = new ServerProc(port, "redis-sentinel", [conf]);
      await s.start();
      this.sentinels.push(s);
    }
    // Every sentinel knows the replica (a failover needs one) and the other sentinels (a quorum).
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
    rmSync(this.dir, { recursive: true, force: true });
  }
}

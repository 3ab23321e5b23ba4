// Nothing opens a connection when it is made: a client, a worker, the notifier and the cluster lock connect on
// start() or on first use.
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SchemaNotReadyError, SkiplockClient, Worker } from "../src/index.js";
import { RedisNotifier } from "../src/notify/redis.js";
import { ClusterLock } from "../src/worker/lock.js";
import { DATABASE_URL, quiet, waitFor } from "./helpers.js";

/** A TCP server that answers nothing and records, by remote port, every connection that reaches it, in order. */
class Doorway {
  readonly #server: Server = createServer((socket) => {
    this.#sockets.add(socket);
    this.arrivals.push(socket.remotePort!);
  });
  readonly #sockets = new Set<Socket>();
  readonly arrivals: number[] = [];
  port = 0;

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.port = (this.#server.address() as { port: number }).port;
  }

  /** How many arrivals the last probe closed. */
  #probed = 0;

  /**
   * Connects once itself and resolves once that connection arrived, with the ports of every connection that arrived
   * before it since the last probe. A connection begun earlier sent its handshake earlier, and the kernel hands them
   * over in order.
   */
  async arrivedBeforeProbe(): Promise<number[]> {
    await new Promise((resolve) => setImmediate(resolve)); // let anything already begun send its handshake
    const probe = connect(this.port, "127.0.0.1");
    this.#sockets.add(probe);
    await new Promise((resolve) => probe.once("connect", resolve));
    const port = probe.localPort!;
    await waitFor("the probe to arrive", () => this.arrivals.includes(port));
    const at = this.arrivals.indexOf(port);
    const before = this.arrivals.slice(this.#probed, at);
    this.#probed = at + 1;
    return before;
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

const doorway = new Doorway();
const redisUrl = () => `redis://127.0.0.1:${doorway.port}`;
const databaseUrl = () => `postgres://nobody@127.0.0.1:${doorway.port}/nothing`;

beforeAll(() => doorway.start());
afterAll(() => doorway.stop());

describe("connections open on start or first use, never in a constructor", () => {
  it("a client, a worker, a notifier and a cluster lock, made and closed, open nothing", async () => {
    const client = new SkiplockClient({ databaseUrl: databaseUrl(), redisUrl: redisUrl(), logger: quiet });
    const worker = new Worker({
      databaseUrl: databaseUrl(),
      redisUrl: redisUrl(),
      logger: quiet,
      tasks: { f: () => 1 },
    });
    const notifier = new RedisNotifier({ url: redisUrl(), schema: "nothing", logger: quiet });
    const lock = new ClusterLock(redisUrl());
    try {
      expect(await doorway.arrivedBeforeProbe()).toEqual([]);
    } finally {
      await Promise.all([client.close(), worker.stop(), notifier.stop(), lock.stop()]);
    }
    expect(await doorway.arrivedBeforeProbe()).toEqual([]);
  });

  it("the notifier and the lock connect on start()", async () => {
    const notifier = new RedisNotifier({ url: redisUrl(), schema: "nothing", logger: quiet });
    const lock = new ClusterLock(redisUrl());
    try {
      const before = doorway.arrivals.length;
      await Promise.all([notifier.start(), lock.start()]);
      await waitFor("both connections to arrive", () => doorway.arrivals.length >= before + 2);
    } finally {
      await Promise.all([notifier.stop(), lock.stop()]);
    }
  });

  it("a client's doorbell connects with its first enqueue", async () => {
    // A schema that does not exist: the enqueue fails at once, having begun by connecting the doorbell (so that the
    // wake-up after a successful insert need not wait for it).
    const client = new SkiplockClient({
      databaseUrl: DATABASE_URL,
      redisUrl: redisUrl(),
      schema: "no_such_schema",
      logger: quiet,
    });
    try {
      const before = doorway.arrivals.length;
      await expect(client.createTask("f")).rejects.toBeInstanceOf(SchemaNotReadyError);
      await waitFor("the doorbell to connect", () => doorway.arrivals.length > before);
    } finally {
      await client.close();
    }
  });
});

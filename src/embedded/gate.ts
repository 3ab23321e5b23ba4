import type { PGlite } from "@electric-sql/pglite";

type ProtocolResults = Awaited<ReturnType<PGlite["execProtocolStream"]>>;

/** A Sync message: ends whatever extended-protocol exchange an abandoned connection left open. */
const SYNC = new Uint8Array([0x53, 0, 0, 0, 4]);
const PARSE = 0x50;

/** The statement name of a Parse message ("" for the unnamed statement, or for another message). */
function parsedName(message: Uint8Array): string {
  if (message[0] !== PARSE || message.length < 6) return "";
  const end = message.indexOf(0, 5);
  return end <= 5 ? "" : Buffer.from(message.subarray(5, end)).toString("utf8");
}

/**
 * One PGlite instance is one Postgres session, shared by every pg connection skiplock opens on it (the client's
 * pool, a worker's claim connection and pool, the heartbeat). The gate lets one connection at a time talk to it,
 * from its first message until the session is idle again: a ReadyForQuery with status "I". So a transaction (from
 * BEGIN to COMMIT) or an extended-protocol exchange (Parse … Sync) never has another caller's statement inside it;
 * between statements outside a transaction, the connections take turns in arrival order.
 */
export class Gate {
  readonly #pglite: PGlite;
  #holder: object | null = null;
  readonly #queue: { owner: object; go: () => void }[] = [];
  /** Named statements prepared in the session (by any connection). */
  readonly #prepared = new Set<string>();

  constructor(pglite: PGlite) {
    this.#pglite = pglite;
  }

  /** Sends `message` for connection `owner`, waiting for its turn first. */
  async exec(owner: object, message: Uint8Array): Promise<ProtocolResults> {
    if (this.#holder !== owner) await this.#acquire(owner);
    // Two connections can both send the Parse of a statement neither had seen prepared (pg tracks statements per
    // connection); in the one session the second would fail as a duplicate. It is answered as done.
    const name = parsedName(message);
    if (name !== "" && this.#prepared.has(name)) return [{ name: "parseComplete", length: 4 }] as ProtocolResults;
    let results: ProtocolResults;
    try {
      results = await this.#pglite.execProtocolStream(message, { throwOnError: false });
    } catch (err) {
      await this.abandon(owner); // the session's state is unknown: roll back whatever it holds
      throw err;
    }
    if (name !== "" && results.some((m) => m.name === "parseComplete")) this.#prepared.add(name);
    const ready = results.findLast((m) => m.name === "readyForQuery") as { status?: string } | undefined;
    if (ready?.status === "I") this.#release(owner);
    return results;
  }

  /**
   * Connection `owner` is closed (or failed): when it held the session, whatever it left open is ended (an exchange
   * without its Sync, a transaction without its COMMIT is rolled back) and the next connection gets its turn.
   */
  async abandon(owner: object): Promise<void> {
    const queued = this.#queue.findIndex((w) => w.owner === owner);
    if (queued !== -1) this.#queue.splice(queued, 1);
    if (this.#holder !== owner) return;
    // Held by no connection meanwhile: one reused at once (a pool's next caller) queues like any other.
    const ending = {};
    this.#holder = ending;
    try {
      await this.#pglite.execProtocolStream(SYNC, { throwOnError: false });
      if (this.#pglite.isInTransaction()) await this.#pglite.exec("ROLLBACK");
    } catch {
      // A closed instance: nothing is left to end.
    }
    this.#release(ending);
  }

  #acquire(owner: object): Promise<void> {
    if (this.#holder === null) {
      this.#holder = owner;
      return Promise.resolve();
    }
    return new Promise((go) => this.#queue.push({ owner, go }));
  }

  #release(owner: object): void {
    if (this.#holder !== owner) return;
    const next = this.#queue.shift();
    this.#holder = next?.owner ?? null;
    next?.go();
  }
}

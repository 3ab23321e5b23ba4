import { isConnectionError } from "./db/errors.js";
import type { TaskInsert, Task } from "./task.js";

/*
 * Concurrent createTask calls share one insert. A call that finds fewer than `maxInFlight` inserts running goes at
 * once, alone, exactly as it would without the batcher: no timer ever holds a call back. Calls that arrive while
 * that many are running queue up, and the first insert to finish sends everything queued as one batch statement
 * (one insert, one commit, one flush of the WAL) instead of one commit each.
 *
 * A batch statement is all or nothing. When it fails with an error Postgres reported (so nothing was committed),
 * each call of the batch is sent again alone and gets its own result or error: one call's bad data never fails the
 * others. A lost connection fails the whole batch, as it would have failed each call: resending could insert twice
 * if the commit had in fact gone through. See docs/architecture.md, Concurrent enqueues share one insert.
 */

/** Most tasks one shared statement carries; calls beyond wait for the next one. */
const MAX_BATCH = 1000;

interface Waiting {
  spec: TaskInsert;
  resolve: (task: Task) => void;
  reject: (err: unknown) => void;
}

export class InsertBatcher {
  readonly #write: (specs: TaskInsert[]) => Promise<Task[]>;
  readonly #maxInFlight: number;
  #queue: Waiting[] = [];
  #inFlight = 0;

  /** `write` inserts the specs and returns their tasks in order (ringing the bell and so on after its commit). */
  constructor(write: (specs: TaskInsert[]) => Promise<Task[]>, maxInFlight: number) {
    this.#write = write;
    this.#maxInFlight = maxInFlight;
  }

  add(spec: TaskInsert): Promise<Task> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ spec, resolve, reject });
      if (this.#inFlight < this.#maxInFlight) this.#flush();
    });
  }

  #flush(): void {
    const batch = this.#queue.length <= MAX_BATCH ? this.#queue : this.#queue.slice(0, MAX_BATCH);
    this.#queue = batch === this.#queue ? [] : this.#queue.slice(MAX_BATCH);
    this.#inFlight++;
    void this.#send(batch).finally(() => {
      this.#inFlight--;
      if (this.#queue.length > 0) this.#flush();
    });
  }

  async #send(batch: Waiting[]): Promise<void> {
    let tasks: Task[];
    try {
      tasks = await this.#write(batch.map((w) => w.spec));
    } catch (err) {
      if (batch.length === 1 || !reportedByPostgres(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
      await Promise.all(batch.map((w) => this.#write([w.spec]).then(([task]) => w.resolve(task!), w.reject)));
      return;
    }
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(tasks[i]!);
  }
}

/**
 * An error with a SQLSTATE that Postgres sent for the statement, so the statement (and its autocommit) did not
 * happen; connection failures (class 08, or no SQLSTATE: a socket error) leave unknown whether a commit went through.
 */
function reportedByPostgres(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !isConnectionError(err);
}

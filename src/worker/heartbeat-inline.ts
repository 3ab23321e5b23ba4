import { EventEmitter } from "node:events";
import { retryMoved } from "../db/moved-rows.js";
import type { Queryable, Statement } from "../db/statements.js";

/** What heartbeat-thread.js is given at start, here as the constructor's argument. */
export interface BeatConfig {
  statement: Statement;
  seen?: Statement | undefined;
  workerId: string;
  interval: number;
  grace: number;
}

/**
 * The heartbeat loop of heartbeat-thread.js, on the main thread, for the embedded database: its one session lives
 * in this thread and cannot be reached from another. It takes the thread's messages (`postMessage`) and answers
 * with the thread's ("message" events), so Heartbeat drives either the same way. What the thread is for, beats that
 * go on while a handler blocks the main thread, does not hold here: a handler that blocks the process on the
 * embedded database blocks its database too.
 */
export class InlineBeats extends EventEmitter {
  readonly #q: Queryable;
  readonly #cfg: BeatConfig;
  #ids = "";
  #attempts = "";
  #added: { ids: string; attempts: string }[] = [];
  #seq = 0;
  #running = 0;
  #failing = false;
  #stopped = false;
  #timer: NodeJS.Timeout;

  constructor(q: Queryable, cfg: BeatConfig) {
    super();
    this.#q = q;
    this.#cfg = cfg;
    this.#timer = setTimeout(() => void this.#beat(), cfg.interval * 1000);
  }

  unref(): void {
    this.#timer.unref();
  }

  postMessage(msg: { type: string; ids?: string; attempts?: string; seq?: number; running?: number }): void {
    if (msg.seq !== undefined) this.#seq = msg.seq;
    if (msg.running !== undefined) this.#running = msg.running;
    if (msg.type === "set") {
      this.#ids = msg.ids ?? "";
      this.#attempts = msg.attempts ?? "";
      this.#added = [];
    } else if (msg.type === "add" && msg.ids) {
      this.#added.push({ ids: msg.ids, attempts: msg.attempts ?? "" });
    } else if (msg.type === "stop") {
      this.#stopped = true;
      clearTimeout(this.#timer);
      setImmediate(() => this.emit("message", { type: "stopped" }));
    }
  }

  async terminate(): Promise<number> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    return 0;
  }

  #joined(list: string, key: "ids" | "attempts"): string {
    const added = this.#added.map((a) => a[key]);
    if (added.length === 0) return list;
    return list ? `${list},${added.join(",")}` : added.join(",");
  }

  async #beat(): Promise<void> {
    const sentAt = Date.now();
    const covered = this.#seq;
    const ids = this.#joined(this.#ids, "ids");
    if (!ids) {
      this.emit("message", { type: "beat", rows: 0, sentAt, seq: covered });
    } else {
      try {
        const r = await retryMoved(() =>
          this.#q.query<{ beaten: number; cancel: string }>({
            ...this.#cfg.statement,
            values: [this.#cfg.workerId, ids, this.#joined(this.#attempts, "attempts"), this.#cfg.grace],
          }),
        );
        this.#failing = false;
        const { beaten, cancel } = r.rows[0] ?? { beaten: 0, cancel: "" };
        if (!this.#stopped) this.emit("message", { type: "beat", rows: beaten, sentAt, seq: covered, cancel });
      } catch (err) {
        this.#failing = true;
        if (!this.#stopped) {
          this.emit("message", { type: "error", message: err instanceof Error ? err.message : String(err) });
        }
      }
    }
    if (this.#cfg.seen && !this.#stopped && !this.#failing) {
      // The registry row's refresh: it only informs the dashboard, so its failure is not the beat's.
      await this.#q.query({ ...this.#cfg.seen, values: [this.#cfg.workerId, this.#running] }).catch(() => {});
    }
    if (this.#stopped) return;
    this.#timer = setTimeout(
      () => void this.#beat(),
      (this.#failing ? Math.min(this.#cfg.interval, 0.5) : this.#cfg.interval) * 1000,
    );
    this.#timer.unref();
  }
}

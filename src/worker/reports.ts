import { performance } from "node:perf_hooks";
import { isTransientError } from "../db/errors.js";
import type { Queryable } from "../db/statements.js";
import type { Logger } from "../logger.js";
import type { Notifier } from "../notify/index.js";
import type { ClaimedRow } from "../sql/claim.js";
import { writeReports, type Report } from "../sql/progress.js";
import type { JsonValue } from "../task.js";
import { noSignal, type Signal, type WorkerEvents } from "./events.js";
import { runningTask } from "./running-task.js";
import { taskFields } from "./task-log.js";

/** At most one write per task in this many milliseconds, however often its handler reports. */
export const REPORT_INTERVAL_MS = 1000;
/** How long the last report of a finished attempt is retried before its outcome is written without it. */
const FINAL_FLUSH_MS = 10_000;

/** What one attempt reported and has not been written yet. */
interface Entry {
  row: ClaimedRow;
  maxRetries: number;
  /** Progress JSON not yet written, or null. */
  progress: string | null;
  /** Meta keys not yet written, merged, or null. */
  meta: { [key: string]: JsonValue } | null;
  /** performance.now() of the last write sent. */
  lastWriteAt: number;
  timer: NodeJS.Timeout | null;
  writing: Promise<boolean> | null;
  /** The attempt ended: nothing more is accepted, and the entry goes once its last write is done. */
  ended: boolean;
  /** Calls waiting for the write of what they reported. */
  waiting: (() => void)[];
}

export interface ReportWriterOptions {
  q: Queryable;
  tasks: string;
  workerId: string;
  maxRetries: number;
  notifier: Notifier;
  logger: Logger;
  signal?: Signal;
}

/**
 * Writes what running handlers report through taskContext().progress and setMeta: at most one write a second per
 * task, the latest progress and every meta key coalesced in between, and the reports of all tasks due at the same
 * moment in one statement (sql/progress.ts). A call that can be written now resolves once it is; one that falls inside
 * its task's second resolves at once, its value written at the end of that second. An attempt's last report is
 * flushed before its outcome is handed on (`flush`), so the outcome never overtakes it and it is never lost. A failed
 * write is logged and retried a second later; a report never rejects for it. Handlers that never report cost nothing
 * here: no entry, no timer.
 */
export class ReportWriter {
  readonly #o: ReportWriterOptions;
  readonly #signal: Signal;
  readonly #entries = new Map<string, Entry>();
  /** Entries to write on the next turn of the event loop. */
  #due = new Set<Entry>();
  #scheduled = false;
  #stopped = false;

  constructor(options: ReportWriterOptions) {
    this.#o = options;
    this.#signal = options.signal ?? noSignal;
  }

  /** Records a report of `row`'s attempt (values already checked); see the class comment for when it resolves. */
  report(row: ClaimedRow, progress: string | null, meta: { [key: string]: JsonValue } | null): Promise<void> {
    let e = this.#entries.get(row.id);
    if (e && e.row.attempt !== row.attempt) {
      this.#forget(e);
      e = undefined;
    }
    if (!e) {
      e = {
        row,
        maxRetries: row.max_retries ?? this.#o.maxRetries,
        progress: null,
        meta: null,
        lastWriteAt: -Infinity,
        timer: null,
        writing: null,
        ended: false,
        waiting: [],
      };
      this.#entries.set(row.id, e);
    }
    if (e.ended || this.#stopped) return Promise.resolve();
    if (progress !== null) e.progress = progress;
    if (meta !== null) e.meta = e.meta ? Object.assign(e.meta, meta) : meta;
    if (e.writing || e.timer || this.#due.has(e)) return Promise.resolve(); // throttled: written later
    const wait = e.lastWriteAt + REPORT_INTERVAL_MS - performance.now();
    if (wait > 0) {
      this.#later(e, wait);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      e.waiting.push(resolve);
      this.#enqueue(e);
    });
  }

  /**
   * `row`'s attempt ended: writes what it reported and has not been written (retrying for up to 10 s), then forgets
   * it. Null, at no cost, when nothing is left to write; otherwise resolves (never rejects) once written or given up.
   */
  flush(row: ClaimedRow): Promise<void> | null {
    const e = this.#entries.get(row.id);
    if (!e || e.row.attempt !== row.attempt) return null;
    e.ended = true;
    if (e.timer) clearTimeout(e.timer);
    e.timer = null;
    this.#due.delete(e);
    if (!e.writing && e.progress === null && e.meta === null) {
      this.#forget(e);
      return null;
    }
    return this.#finalFlush(e);
  }

  async #finalFlush(e: Entry): Promise<void> {
    const until = performance.now() + FINAL_FLUSH_MS;
    if (e.writing) await e.writing;
    while (e.progress !== null || e.meta !== null) {
      if (await this.#write([e])) break;
      if (performance.now() >= until) {
        this.#o.logger.error(
          "could not record a task's last progress before its outcome; going on without it",
          taskFields(e.row),
        );
        break;
      }
      await new Promise((r) => setTimeout(r, Math.min(REPORT_INTERVAL_MS, until - performance.now())));
    }
    this.#forget(e);
  }

  #forget(e: Entry): void {
    if (e.timer) clearTimeout(e.timer);
    this.#due.delete(e);
    if (this.#entries.get(e.row.id) === e) this.#entries.delete(e.row.id);
    for (const resolve of e.waiting.splice(0)) resolve();
  }

  #later(e: Entry, ms: number): void {
    e.timer = setTimeout(() => {
      e.timer = null;
      if (!e.ended && (e.progress !== null || e.meta !== null)) this.#enqueue(e);
    }, ms);
    e.timer.unref();
  }

  #enqueue(e: Entry): void {
    this.#due.add(e);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      const batch = [...this.#due];
      this.#due.clear();
      if (batch.length > 0) void this.#write(batch);
    });
  }

  /** One statement for `entries`; true when it committed. What it carried is kept for another try when it failed. */
  #write(entries: Entry[]): Promise<boolean> {
    const sent: { e: Entry; progress: string | null; meta: { [key: string]: JsonValue } | null }[] = [];
    const items: Report[] = [];
    const now = performance.now();
    for (const e of entries) {
      sent.push({ e, progress: e.progress, meta: e.meta });
      items.push({
        id: e.row.id,
        attempt: e.row.attempt,
        progressJson: e.progress ?? "null",
        metaJson: e.meta ? JSON.stringify(e.meta) : "null",
      });
      e.progress = null;
      e.meta = null;
      e.lastWriteAt = now;
    }
    const { q, tasks, workerId } = this.#o;
    const writing = writeReports(q, tasks, workerId, items).then(
      (changed) => {
        for (const { e } of sent) {
          const stored = changed.get(e.row.id);
          if (!stored) continue; // the row changed nothing (lease gone) or only meta was written
          this.#o.notifier.publishProgress(e.row.id, stored);
          this.#emit("task:progress", {
            task: runningTask(e.row, workerId, e.maxRetries),
            progress: { fraction: stored.fraction, message: stored.message, at: new Date(stored.at) },
          });
        }
        return true;
      },
      (err: Error) => {
        for (const { e, progress, meta } of sent) {
          // Newer values reported meanwhile win; older meta keys go under the newer ones.
          e.progress ??= progress;
          if (meta) e.meta = e.meta ? { ...meta, ...e.meta } : meta;
        }
        this.#o.logger[isTransientError(err) ? "warn" : "error"]("could not record task progress; will retry", {
          error: err.message,
        });
        this.#emit("worker:error", { error: err, during: "progress write" });
        return false;
      },
    );
    for (const e of entries) e.writing = writing;
    void writing.then((ok) => {
      for (const { e } of sent) {
        if (e.writing === writing) e.writing = null;
        for (const resolve of e.waiting.splice(0)) resolve();
        // What came in during the write, or what it failed to write, goes a second after it.
        if (!e.ended && !e.timer && (e.progress !== null || e.meta !== null)) this.#later(e, REPORT_INTERVAL_MS);
        else if (e.ended && ok && e.progress === null && e.meta === null) this.#forget(e);
      }
    });
    return writing;
  }

  /** A listener's own bug must not stop the writes, nor hold up the outcome waiting for the last one. */
  #emit<K extends "task:progress" | "worker:error">(name: K, ...args: WorkerEvents[K]): void {
    try {
      this.#signal(name, ...args);
    } catch (err) {
      this.#o.logger.error(`a ${name} listener threw`, { error: (err as Error)?.message ?? String(err) });
    }
  }

  start(): void {}

  /** Reports still waiting for their second are written now (running attempts flush their own as they end). */
  async stop(): Promise<void> {
    this.#stopped = true;
    const left = [...this.#entries.values()].filter((e) => e.progress !== null || e.meta !== null || e.writing);
    await Promise.all(left.map((e) => this.flush(e.row)));
  }
}

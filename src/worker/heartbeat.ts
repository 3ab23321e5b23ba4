import { Worker as Thread } from "node:worker_threads";
import type { Logger } from "../logger.js";
import { heartbeatStatement } from "../sql/heartbeat.js";

export interface HeartbeatOptions {
  databaseUrl: string;
  tasks: string;
  workerId: string;
  /** Seconds between beats. */
  interval: number;
  /** Seconds past a task's timeout during which it is still heartbeated. */
  grace: number;
  logger: Logger;
}

/**
 * Keeps `heartbeat_at` fresh on every task this worker is running, from a dedicated thread with its own
 * connection (see heartbeat-thread.js for why). When the process dies or is frozen, the beats stop and the sweeper
 * takes the tasks back.
 */
export class Heartbeat {
  readonly #options: HeartbeatOptions;
  #thread: Thread | null = null;
  #failing = false;
  #beats = 0;
  #stopped = false;

  constructor(options: HeartbeatOptions) {
    this.#options = options;
  }

  /** Beats sent since start (for tests and metrics). */
  get beats(): number {
    return this.#beats;
  }

  start(): void {
    const { databaseUrl, tasks, workerId, interval, grace, logger } = this.#options;
    const thread = new Thread(new URL("./heartbeat-thread.js", import.meta.url), {
      workerData: { databaseUrl, statement: heartbeatStatement(tasks), workerId, interval, grace },
    });
    thread.unref();
    thread.on("message", (msg: { type: string; message?: string }) => {
      if (msg.type === "beat") {
        this.#beats++;
        if (this.#failing) logger.info("heartbeat restored");
        this.#failing = false;
      } else if (msg.type === "error" && !this.#failing) {
        this.#failing = true;
        logger.warn("heartbeat failed; retrying", { error: msg.message });
      }
    });
    thread.on("error", (err) => logger.error("heartbeat thread crashed", { error: err.message }));
    thread.on("exit", () => {
      if (this.#thread !== thread) return; // stopped on purpose
      // Without beats the sweeper would take this worker's tasks away: start another thread.
      this.#thread = null;
      logger.warn("heartbeat thread exited; restarting it");
      setTimeout(() => {
        if (!this.#stopped) this.start();
      }, 200).unref();
    });
    this.#thread = thread;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    const thread = this.#thread;
    if (!thread) return;
    this.#thread = null;
    const stopped = new Promise<void>((resolve) => {
      thread.on("message", (msg: { type: string }) => msg.type === "stopped" && resolve());
      thread.on("exit", () => resolve());
    });
    thread.postMessage({ type: "stop" });
    const timer = setTimeout(() => void thread.terminate(), 2000);
    await stopped;
    clearTimeout(timer);
    await thread.terminate();
  }
}

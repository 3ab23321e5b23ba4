import { hostname } from "node:os";
import type { Queryable } from "../db/statements.js";
import type { Logger } from "../logger.js";
import { markWorkerStopped, registerWorker, type WorkerRecord } from "../sql/workers.js";
import { packageVersion } from "../version.js";
import type { Service } from "./service.js";

export interface PresenceOptions {
  q: Queryable;
  /** `"schema".workers`. */
  workers: string;
  logger: Logger;
  record: () => Omit<WorkerRecord, "host" | "pid" | "version">;
}

/**
 * The worker's row in the registry (migration 0008): written at start, stamped stopped at a clean stop. The
 * heartbeat thread refreshes it in between (see heartbeat-thread.js). The registry only informs the dashboard, so a
 * failed write is logged and the worker goes on.
 */
export class Presence implements Service {
  readonly #o: PresenceOptions;
  #registered = false;

  constructor(options: PresenceOptions) {
    this.#o = options;
  }

  async start(): Promise<void> {
    try {
      await registerWorker(this.#o.q, this.#o.workers, {
        ...this.#o.record(),
        host: hostname(),
        pid: process.pid,
        version: packageVersion(),
      });
      this.#registered = true;
    } catch (err) {
      this.#o.logger.warn("could not record this worker in the registry", { error: (err as Error).message });
    }
  }

  async stop(): Promise<void> {
    if (!this.#registered) return;
    const { id } = this.#o.record();
    try {
      await markWorkerStopped(this.#o.q, this.#o.workers, id);
    } catch (err) {
      this.#o.logger.warn("could not record this worker's stop in the registry", { error: (err as Error).message });
    }
  }
}

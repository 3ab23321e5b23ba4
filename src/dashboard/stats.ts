import type { TaskCounts } from "../admin.js";
import { clientInternals, type SkiplockClient } from "../client.js";
import { finishedPerMinute, oldestDueByQueue, type MinuteCounts } from "../sql/stats.js";

export interface DashboardStats {
  /** Per queue and status (countTasks: finished counts may be estimates past its exact limit). */
  counts: TaskCounts;
  /** The last hour, a minute at a time, oldest first: tasks completed and failed (for good) in each. */
  perMinute: MinuteCounts[];
  /** Seconds the oldest due task of each queue has waited; queues with nothing due are absent. */
  oldestDue: { [queue: string]: number };
  /** Workers seen within their staleAfter. */
  liveWorkers: number;
  readOnly: boolean;
  /** When these numbers were read (they are cached for a moment). */
  at: Date;
}

/** How long one reading of the stats serves every request: many open pages cost one set of queries. */
const CACHE_MS = 2000;

/** The overview's numbers, read at most once per CACHE_MS however many pages poll them. */
export class StatsCache {
  readonly #client: SkiplockClient;
  readonly #readOnly: boolean;
  #current: { at: number; value: Promise<DashboardStats> } | null = null;

  constructor(client: SkiplockClient, readOnly: boolean) {
    this.#client = client;
    this.#readOnly = readOnly;
  }

  get(): Promise<DashboardStats> {
    const now = Date.now();
    if (this.#current && now - this.#current.at < CACHE_MS) return this.#current.value;
    const value = this.#read();
    const entry = { at: now, value };
    this.#current = entry;
    // A failed reading is not served to the next request.
    value.catch(() => {
      if (this.#current === entry) this.#current = null;
    });
    return value;
  }

  async #read(): Promise<DashboardStats> {
    const { store } = clientInternals(this.#client);
    const [counts, perMinute, oldestDue, workers] = await Promise.all([
      this.#client.countTasks(),
      finishedPerMinute(store.pool, store.tasks),
      oldestDueByQueue(store.pool, store.tasks),
      this.#client.listWorkers(),
    ]);
    return {
      counts,
      perMinute,
      oldestDue,
      liveWorkers: workers.filter((w) => w.status === "live").length,
      readOnly: this.#readOnly,
      at: new Date(),
    };
  }
}

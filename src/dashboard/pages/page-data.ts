import { clientInternals, type SkiplockClient } from "../../client.js";
import { countLiveSplit, type LiveSplit } from "../../sql/dashboard-counts.js";
import { StatsCache, type DashboardStats } from "../stats.js";
import { number } from "./html.js";
import type { NavKey } from "./layout.js";

/** Seconds without a heartbeat after which a running task is listed as stale (a worker's default staleAfter). */
export const STALE_AFTER_SECONDS = 30;
/** The stale and due counts stop here (see sql/dashboard-counts.ts). */
export const SPLIT_CAP = 10_000;
const CACHE_MS = 2000;

export interface PageData {
  stats: DashboardStats;
  split: LiveSplit;
}

/**
 * The numbers the pages show beside their links and on the overview, read at most once per CACHE_MS however many
 * pages are open and refreshing: countTasks (capped, estimated past its limit), the per-minute counts, the oldest due
 * task per queue, live workers, and the stale and due counts.
 */
export class PageDataCache {
  readonly #client: SkiplockClient;
  readonly #stats: StatsCache;
  #split: { at: number; value: Promise<LiveSplit> } | null = null;

  constructor(client: SkiplockClient, readOnly: boolean) {
    this.#client = client;
    this.#stats = new StatsCache(client, readOnly);
  }

  async get(): Promise<PageData> {
    const [stats, split] = await Promise.all([this.#stats.get(), this.#readSplit()]);
    return { stats, split };
  }

  #readSplit(): Promise<LiveSplit> {
    const now = Date.now();
    if (this.#split && now - this.#split.at < CACHE_MS) return this.#split.value;
    const { store } = clientInternals(this.#client);
    const value = countLiveSplit(store.pool, store.tasks, STALE_AFTER_SECONDS, SPLIT_CAP);
    const entry = { at: now, value };
    this.#split = entry;
    value.catch(() => {
      if (this.#split === entry) this.#split = null;
    });
    return value;
  }
}

const capped = (n: number): string => (n >= SPLIT_CAP ? `${number(SPLIT_CAP)}+` : number(n));

/** The counts beside the navigation's list links; "~" marks an estimate. */
export function navCounts(d: PageData): Partial<Record<NavKey, string>> {
  const { totals, estimated } = d.stats.counts;
  const shown = (status: keyof typeof totals) => `${estimated.includes(status) ? "~" : ""}${number(totals[status])}`;
  return {
    failed: shown("FAILED"),
    stale: capped(d.split.stale),
    running: shown("PROGRESS"),
    due: capped(d.split.due),
    scheduled: d.split.due >= SPLIT_CAP ? "?" : number(Math.max(0, totals.PENDING - d.split.due)),
    completed: shown("COMPLETED"),
    cancelled: shown("CANCELLED"),
    workers: number(d.stats.liveWorkers),
  };
}

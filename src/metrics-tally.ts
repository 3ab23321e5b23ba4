import { Counter, Histogram, type MetricType, type MetricValueWithName, type Registry } from "prom-client";

export const OUTCOMES = ["completed", "failed", "retried", "cancelled", "swept"] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** One (queue, name) pair's tallies: outcomes counted, durations in (non-cumulative) buckets. */
interface Series {
  queue: string;
  name: string;
  outcomes: number[];
  /** buckets[i]: durations <= bounds[i] and > bounds[i - 1]; the last slot: above every bound. */
  buckets: number[];
  sum: number;
  count: number;
}

const DURATION = {
  name: "skiplock_task_duration_seconds",
  help: "Seconds a task's attempt ran, whatever its outcome.",
};

type Value = { value: number; labels: Record<string, string | number>; metricName?: string };

/**
 * The per-task counters, kept as plain numbers: ending a task costs two map lookups and a few additions, where
 * prom-client's own `inc` and `observe` hash their labels on every call (1.8 µs a task for both, measured). The
 * numbers become skiplock_tasks_processed_total and skiplock_task_duration_seconds only when scraped, through
 * prom-client metrics whose `get` reads them, so the text, the JSON and `Registry.merge` work as for any other metric.
 */
export class TaskTally {
  readonly #byQueue = new Map<string, Map<string, Series>>();
  readonly #bounds: number[];

  constructor(registry: Registry, bounds: number[]) {
    this.#bounds = bounds;
    // The metrics read the tallies when scraped, and clear them when the registry resets its metrics.
    const processed = () => this.#processed();
    const durations = () => this.#durations();
    const clear = () => this.#byQueue.clear();
    new (class extends Counter<"queue" | "name" | "outcome"> {
      override async get() {
        return { ...(await super.get()), values: processed() };
      }
      override reset(): void {
        super.reset();
        clear();
      }
    })({
      name: "skiplock_tasks_processed_total",
      help: "Task attempts this worker ended, by outcome: completed, failed (for good), retried, cancelled; swept: a lost worker's task this worker took back.",
      labelNames: ["queue", "name", "outcome"],
      registers: [registry],
    });
    new (class extends Histogram<"queue" | "name"> {
      override async get() {
        const values = durations() as MetricValueWithName<"queue" | "name">[];
        return {
          ...DURATION,
          type: "histogram" as unknown as MetricType, // the enum is a type only: prom-client exports no value for it
          aggregator: "sum" as const,
          collect: () => {},
          values,
        };
      }
      /** What the registry reads for the text format (labels already whole). */
      getForPromString() {
        return this.get();
      }
      override reset(): void {
        super.reset();
        clear();
      }
    })({
      ...DURATION,
      labelNames: ["queue", "name"],
      buckets: bounds,
      registers: [registry],
    });
  }

  #series(queue: string, name: string): Series {
    let byName = this.#byQueue.get(queue);
    if (!byName) this.#byQueue.set(queue, (byName = new Map()));
    let s = byName.get(name);
    if (!s) {
      s = {
        queue,
        name,
        outcomes: OUTCOMES.map(() => 0),
        buckets: new Array<number>(this.#bounds.length + 1).fill(0),
        sum: 0,
        count: 0,
      };
      byName.set(name, s);
    }
    return s;
  }

  /** An attempt ended after `seconds`. */
  ended(queue: string, name: string, outcome: Outcome, seconds: number): void {
    const s = this.#series(queue, name);
    s.outcomes[OUTCOMES.indexOf(outcome)]!++;
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    s.buckets[i]!++;
    s.sum += seconds;
    s.count++;
  }

  /** A task ended without a duration of this worker's (swept). */
  counted(queue: string, name: string, outcome: Outcome): void {
    this.#series(queue, name).outcomes[OUTCOMES.indexOf(outcome)]!++;
  }

  *#all(): Generator<Series> {
    for (const byName of this.#byQueue.values()) yield* byName.values();
  }

  #processed(): Value[] {
    const values: Value[] = [];
    for (const s of this.#all()) {
      OUTCOMES.forEach((outcome, i) => {
        if (s.outcomes[i]! > 0)
          values.push({ value: s.outcomes[i]!, labels: { queue: s.queue, name: s.name, outcome } });
      });
    }
    return values;
  }

  #durations(): Value[] {
    const metric = DURATION.name;
    const values: Value[] = [];
    for (const s of this.#all()) {
      if (s.count === 0) continue;
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += s.buckets[i]!;
        values.push({
          value: cumulative,
          labels: { le, queue: s.queue, name: s.name },
          metricName: `${metric}_bucket`,
        });
      });
      const labels = { queue: s.queue, name: s.name };
      values.push(
        { value: s.count, labels: { le: "+Inf", ...labels }, metricName: `${metric}_bucket` },
        { value: s.sum, labels, metricName: `${metric}_sum` },
        { value: s.count, labels, metricName: `${metric}_count` },
      );
    }
    return values;
  }
}

import type { Notifier } from "./notifier.js";

/** What a wake-up needs to know of a task just enqueued. */
export interface EnqueuedTask {
  queue: string;
  runAt: Date;
  createdAt: Date;
}

/**
 * Distinct due times announced per queue for one write; later ones share the last message (its earliest time). A
 * worker keeps one timer per due time it hears of, so each announced time starts its tasks on time without a poll.
 */
const MAX_DUE_TIMES = 64;

/**
 * Rings for tasks whose insert has committed: once per queue with the number due now, and for the tasks due later
 * once per queue and due time (up to MAX_DUE_TIMES) with their number, so idle workers can set a timer for each.
 * Concurrent createTask calls share one insert, and so one call of this: each caller's delay still gets its own
 * wake-up, as it did when every call was its own insert.
 */
export function publishWakes(notifier: Notifier, tasks: readonly EnqueuedTask[]): void {
  const due = new Map<string, number>();
  let later: Map<string, Map<number, number>> | undefined;
  for (const task of tasks) {
    const at = task.runAt.getTime();
    if (at <= task.createdAt.getTime()) {
      due.set(task.queue, (due.get(task.queue) ?? 0) + 1);
    } else {
      later ??= new Map();
      let times = later.get(task.queue);
      if (!times) later.set(task.queue, (times = new Map()));
      times.set(at, (times.get(at) ?? 0) + 1);
    }
  }
  for (const [queue, count] of due) notifier.publishWake(queue, count);
  if (!later) return;
  for (const [queue, times] of later) {
    const sorted = [...times].sort((a, b) => a[0] - b[0]);
    for (let i = 0; i < sorted.length && i < MAX_DUE_TIMES - 1; i++)
      notifier.publishWake(queue, sorted[i]![1], sorted[i]![0]);
    if (sorted.length >= MAX_DUE_TIMES) {
      let rest = 0;
      for (let i = MAX_DUE_TIMES - 1; i < sorted.length; i++) rest += sorted[i]![1];
      notifier.publishWake(queue, rest, sorted[MAX_DUE_TIMES - 1]![0]);
    }
  }
}

import type { Notifier } from "./notifier.js";

/** What a wake-up needs to know of a task just enqueued. */
export interface EnqueuedTask {
  queue: string;
  runAt: Date;
  createdAt: Date;
}

/**
 * Rings for tasks whose insert has committed: once per queue with the number due now, and once per queue with the
 * number due later and the earliest of their due times, so idle workers can set a timer for it. A batch of any size
 * costs one message per queue, not one per task.
 */
export function publishWakes(notifier: Notifier, tasks: readonly EnqueuedTask[]): void {
  const due = new Map<string, number>();
  const later = new Map<string, { count: number; at: number }>();
  for (const task of tasks) {
    const at = task.runAt.getTime();
    if (at <= task.createdAt.getTime()) {
      due.set(task.queue, (due.get(task.queue) ?? 0) + 1);
    } else {
      const l = later.get(task.queue);
      later.set(task.queue, { count: (l?.count ?? 0) + 1, at: Math.min(l?.at ?? Infinity, at) });
    }
  }
  for (const [queue, count] of due) notifier.publishWake(queue, count);
  for (const [queue, l] of later) notifier.publishWake(queue, l.count, l.at);
}

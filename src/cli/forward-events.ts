import type { Worker } from "../worker/worker.js";
import { FREQUENT_EVENT_NAMES, WORKER_EVENT_NAMES } from "../worker/events.js";

let sending = 0;
const whenSent: (() => void)[] = [];

/**
 * When run-worker was started with an IPC channel (a supervisor, a test), every worker event goes to the parent as
 * `{ event, data }`, errors as their name and message: supervisors and tests wait on these instead of reading log
 * text. The per-task and per-claim events (task:*, claim:answered) only with `taskEvents` (`--ipc-task-events`): a
 * listener makes the worker build each event's data, and a supervisor watching a drain of thousands of tasks a second
 * must not pay for it unasked.
 */
export function forwardEventsToParent(worker: Worker, options: { taskEvents?: boolean } = {}): void {
  if (!process.send) return;
  process.channel?.unref();
  for (const event of WORKER_EVENT_NAMES) {
    if (!options.taskEvents && FREQUENT_EVENT_NAMES.has(event)) continue;
    worker.on(event, (...args: unknown[]) => {
      const data = args[0] === undefined ? null : JSON.parse(JSON.stringify(args[0], errorsAsMessages));
      sending++;
      process.send!({ event, data }, undefined, undefined, () => {
        if (--sending === 0) for (const resolve of whenSent.splice(0)) resolve();
      });
    });
  }
}

/** Resolves once every event forwarded so far has been handed to the channel (call it before process.exit). */
export function eventsSent(): Promise<void> {
  return sending === 0 ? Promise.resolve() : new Promise((resolve) => whenSent.push(resolve));
}

function errorsAsMessages(_key: string, value: unknown): unknown {
  return value instanceof Error ? { name: value.name, message: value.message } : value;
}

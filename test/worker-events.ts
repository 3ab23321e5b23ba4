// Waiting on an in-process Worker's events, and recording them.
import type { Worker, WorkerEventName, WorkerEvents } from "../src/index.js";

/** Resolves with the data of the first `name` event (matching `match`) the worker emits from now on. */
export function nextEvent<K extends WorkerEventName>(
  worker: Worker,
  name: K,
  match: (...data: WorkerEvents[K]) => boolean = () => true,
  timeoutMs = 20_000,
): Promise<WorkerEvents[K]> {
  return new Promise((resolve, reject) => {
    const on = worker.on as (n: string, l: (...a: unknown[]) => void) => Worker;
    const off = worker.off as (n: string, l: (...a: unknown[]) => void) => Worker;
    const listener = (...data: unknown[]) => {
      if (!match(...(data as WorkerEvents[K]))) return;
      clearTimeout(timer);
      off.call(worker, name, listener);
      resolve(data as WorkerEvents[K]);
    };
    const timer = setTimeout(() => {
      off.call(worker, name, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for worker event ${name}`));
    }, timeoutMs);
    on.call(worker, name, listener);
  });
}

/** Records every `names` event of the worker, in order, as [name, data]. */
export function recordEvents(worker: Worker, names: readonly WorkerEventName[]): [WorkerEventName, unknown][] {
  const seen: [WorkerEventName, unknown][] = [];
  for (const name of names) {
    (worker.on as (n: string, l: (d: unknown) => void) => Worker).call(worker, name, (d) => seen.push([name, d]));
  }
  return seen;
}

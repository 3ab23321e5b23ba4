import { EventEmitter } from "node:events";
import type { StoredProgress } from "../task.js";
import { channels, type Notifier } from "./notifier.js";

// One bus per embedded database and schema, shared process-wide (two copies of this module included, as the
// embedded registry is): a client and a worker on the same `pglite:` URL hear each other.
const BUSES = Symbol.for("skiplock.notify.in-process");
const buses: Map<string, EventEmitter> = ((globalThis as Record<symbol, Map<string, EventEmitter> | undefined>)[
  BUSES
] ??= new Map());

function busFor(database: string, schema: string): EventEmitter {
  const key = `${database}\n${schema}`;
  let bus = buses.get(key);
  if (!bus) {
    bus = new EventEmitter();
    bus.setMaxListeners(0); // every client and worker of the process listens here
    buses.set(key, bus);
  }
  return bus;
}

/**
 * The doorbell of the embedded database, which serves one process: the messages the Redis notifier would carry,
 * passed in memory to the listeners of the same database and schema. Delivered on a later turn of the event loop,
 * as a message from Redis would be, so no listener runs inside the publisher's call. It is always up: nothing can
 * be missed, so no reconnect or status change is ever reported.
 */
export class InProcessNotifier implements Notifier {
  readonly #bus: EventEmitter;
  readonly #ch: ReturnType<typeof channels>;
  readonly #offs = new Set<() => void>();
  #stopped = false;

  /** `database` names the embedded database (its registry key, see embedded/url.ts). */
  constructor(options: { database: string; schema: string }) {
    this.#bus = busFor(options.database, options.schema);
    this.#ch = channels(options.schema);
  }

  get connected(): boolean {
    return !this.#stopped;
  }

  #publish(channel: string, ...args: unknown[]): void {
    if (this.#stopped) return;
    setImmediate(() => this.#bus.emit(channel, ...args));
  }

  #listen(channel: string, listener: (...args: never[]) => void): () => void {
    if (this.#stopped) return () => {};
    const fn = listener as (...args: unknown[]) => void;
    this.#bus.on(channel, fn);
    const off = () => {
      this.#bus.off(channel, fn);
      this.#offs.delete(off);
    };
    this.#offs.add(off);
    return off;
  }

  publishWake(queue: string, count: number, dueAt?: number): void {
    this.#publish(this.#ch.wake(queue), queue, count, dueAt);
  }

  publishFinished(ids: readonly string[]): void {
    if (ids.length > 0) this.#publish(this.#ch.finished, [...ids]);
  }

  publishProgress(id: string, progress: StoredProgress): void {
    this.#publish(this.#ch.progress, id, progress);
  }

  publishCancel(id: string, attempt: number): void {
    this.#publish(this.#ch.cancel, id, attempt);
  }

  onWake(queues: readonly string[], listener: (queue: string, count: number, dueAt?: number) => void): () => void {
    const offs = queues.map((q) => this.#listen(this.#ch.wake(q), listener));
    return () => offs.forEach((off) => off());
  }

  onFinished(listener: (id: string) => void): () => void {
    return this.#listen(this.#ch.finished, (ids: string[]) => ids.forEach((id) => listener(id)));
  }

  onProgress(listener: (id: string, progress: StoredProgress) => void): () => void {
    return this.#listen(this.#ch.progress, listener);
  }

  onCancel(listener: (id: string, attempt: number) => void): () => void {
    return this.#listen(this.#ch.cancel, listener);
  }

  onReconnect(): () => void {
    return () => {};
  }

  onStatus(): () => void {
    return () => {};
  }

  async ready(): Promise<void> {}

  async start(): Promise<void> {}

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const off of [...this.#offs]) off();
  }

  close(): Promise<void> {
    return this.stop();
  }
}

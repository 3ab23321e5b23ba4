/**
 * The shape of every background part of a worker: started in order, stopped in reverse. `stop()` finishes what the
 * part holds (a drain, a last write) before it resolves, and is final.
 */
export interface Service {
  start(): void | Promise<void>;
  stop(): Promise<unknown>;
}

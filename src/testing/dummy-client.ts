import { assertKnownKeys } from "../options.js";
import type { Task } from "../task.js";
import { buildRegistry, type TaskMap } from "../worker/registry.js";
import { claimOrder, MemoryClient, requiredTasks } from "./memory-client.js";

export interface RunAllOptions {
  /** The handlers, as a Worker takes them: `{ name: handler }`, or definitions made with defineTask. */
  tasks: TaskMap;
  /** Rethrow the first handler error (the tasks after it stay PENDING) instead of leaving the task FAILED. */
  propagateErrors?: boolean;
}

const RUN_ALL_KEYS = ["tasks", "propagateErrors"] as const satisfies readonly (keyof RunAllOptions)[];

/**
 * A client for tests that records what is enqueued and runs nothing until asked: `tasks` lists every task enqueued
 * since the last `clear()`, and `runAll({ tasks })` runs the PENDING ones with the given handlers, as
 * ImmediateClient runs them. No Postgres, no Redis, no worker.
 */
export class DummyClient extends MemoryClient {
  #enqueued: Task<unknown>[] = [];

  /**
   * Every task enqueued since the last clear(), in enqueue order, as it stands now (PENDING until runAll). An enqueue
   * that found a live task with its uniqueKey adds none: it returned (or, "replace", updated) that task.
   */
  get tasks(): Task[] {
    return this.#enqueued.map((t) => structuredClone(t) as Task);
  }

  /** Forgets every task (getTask then finds none; whoever waits for one gets null). */
  clear(): void {
    this.#enqueued = [];
    this.forgetAll();
  }

  /**
   * Runs every task PENDING now (not those their handlers enqueue: a later runAll does), one at a time, in the
   * order a worker claims them: priority (higher first), then runAt, then id. Tasks not yet due run too, as if the
   * clock had passed every runAt: a test wants to see delayed work done, not wait for it. Returns them finished,
   * in the order they ran. A task cancelled meanwhile is not run; one a handler "replace"d runs with its new values
   * at its new place in the order.
   */
  async runAll(options: RunAllOptions): Promise<Task[]> {
    assertKnownKeys("runAll", options, RUN_ALL_KEYS);
    const registry = buildRegistry(requiredTasks(options, "runAll"));
    let waiting = this.#enqueued.filter((t) => t.status === "PENDING");
    const ran: Task<unknown>[] = [];
    for (;;) {
      // Chosen afresh each time: a handler may cancel a task or "replace" its priority and runAt.
      waiting = waiting.filter((t) => t.status === "PENDING");
      const next = waiting.reduce<Task<unknown> | undefined>((a, b) => (a && claimOrder(a, b) <= 0 ? a : b), undefined);
      if (!next) break;
      ran.push(next);
      await this.run(next, registry.get(next.name)?.handler, options.propagateErrors ?? false);
    }
    return ran.map((t) => structuredClone(t) as Task);
  }

  protected async enqueued(tasks: Task<unknown>[]): Promise<void> {
    this.#enqueued.push(...tasks);
  }
}

import { assertKnownKeys } from "../options.js";
import type { Task } from "../task.js";
import { buildRegistry, type TaskMap } from "../worker/registry.js";
import { MemoryClient, requiredTasks } from "./memory-client.js";

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

  /** Every task enqueued since the last clear(), in enqueue order, as it stands now (PENDING until runAll). */
  get tasks(): Task[] {
    return this.#enqueued.map((t) => structuredClone(t) as Task);
  }

  /** Forgets every task (getTask then finds none; whoever waits for one gets null). */
  clear(): void {
    this.#enqueued = [];
    this.forgetAll();
  }

  /**
   * Runs every task PENDING now (not those their handlers enqueue: a later runAll does), in enqueue order and one
   * at a time, whatever their `runAt`; returns them finished, in that order. A cancelled task is not run.
   */
  async runAll(options: RunAllOptions): Promise<Task[]> {
    assertKnownKeys("runAll", options, RUN_ALL_KEYS);
    const registry = buildRegistry(requiredTasks(options, "runAll"));
    const ran: Task<unknown>[] = [];
    for (const task of this.#enqueued.filter((t) => t.status === "PENDING")) {
      if (task.status !== "PENDING") continue; // cancelled by a handler that ran before it
      ran.push(task);
      await this.run(task, registry.get(task.name)?.handler, options.propagateErrors ?? false);
    }
    return ran.map((t) => structuredClone(t) as Task);
  }

  protected async enqueued(tasks: Task<unknown>[]): Promise<void> {
    this.#enqueued.push(...tasks);
  }
}

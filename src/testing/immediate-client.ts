import { assertKnownKeys } from "../options.js";
import type { Task } from "../task.js";
import { buildRegistry, type Registered, type TaskMap } from "../worker/registry.js";
import { MemoryClient, requiredTasks } from "./memory-client.js";

export interface ImmediateClientOptions {
  /** The handlers, as a Worker takes them: `{ name: handler }`, or definitions made with defineTask. */
  tasks: TaskMap;
  /** Rethrow a handler's error from createTask (and from a handle's enqueue) instead of returning a FAILED task. */
  propagateErrors?: boolean;
}

const OPTION_KEYS = ["tasks", "propagateErrors"] as const satisfies readonly (keyof ImmediateClientOptions)[];

/**
 * A client for tests that runs each task's handler inside createTask and returns the task finished: COMPLETED with
 * its result as JSON returns it, or FAILED with the error's text. No Postgres, no Redis, no worker.
 *
 * As a worker would: arguments and options are checked as the real client checks them, the handler gets them
 * through JSON and has its taskContext() (`progress` and `setMeta` are recorded on the task), its signal fires at
 * the task's timeout and at a cancelTask, and a task whose name no handler has fails with UnknownTaskError. A
 * uniqueKey held by a live task returns that task, unrun. Unlike a worker: each task runs once, at once (no retry,
 * whatever `maxRetries`; `runAt` and `delay` are recorded, not waited for; thread isolation is ignored; a
 * `transaction` is not used), and a task the handler enqueues runs before the handler goes on.
 */
export class ImmediateClient extends MemoryClient {
  readonly #registry: Map<string, Registered>;
  readonly #propagateErrors: boolean;

  constructor(options: ImmediateClientOptions) {
    super();
    assertKnownKeys("new ImmediateClient", options, OPTION_KEYS);
    this.#registry = buildRegistry(requiredTasks(options, "new ImmediateClient"));
    this.#propagateErrors = options.propagateErrors ?? false;
  }

  protected async enqueued(tasks: Task<unknown>[]): Promise<void> {
    for (const task of tasks) {
      if (task.status !== "PENDING") continue; // in a batch, cancelled by a handler that ran before it
      await this.run(task, this.#registry.get(task.name)?.handler, this.#propagateErrors);
    }
  }
}

import type { WaitOptions } from "../client.js";
import { validateSeconds } from "../config.js";
import { InvalidOptionError, TaskNotFoundError } from "../errors.js";
import { assertKnownKeys } from "../options.js";
import type { CreateTasksOptions, TaskClient } from "../task-client.js";
import {
  FINAL_STATUSES,
  insertedTask,
  prepareTask,
  TASK_OPTION_KEYS,
  validateTaskId,
  type JsonValue,
  type Task,
  type TaskInsert,
  type TaskOptions,
  type TaskSpec,
} from "../task.js";
import type { Handler, TaskMap } from "../worker/registry.js";
import { runInline } from "./run-inline.js";

/**
 * The test modes' shared part: tasks kept in memory under ids 1, 2, 3…, checked by the real client's own checks
 * (prepareTask) before they are kept, and read, awaited and cancelled as the real client does. What happens once a
 * task is kept is the subclass's `enqueued`. Every read returns a copy, as every read of a row does.
 */
export abstract class MemoryClient implements TaskClient {
  readonly #tasks = new Map<string, Task<unknown>>();
  readonly #waiters = new Map<string, Set<(task: Task<unknown> | null) => void>>();
  #nextId = 1;

  /** Called with the tasks a createTask or createTasks call just kept (PENDING), before the call returns them. */
  protected abstract enqueued(tasks: Task<unknown>[]): Promise<void>;

  async createTask<R = JsonValue>(
    name: string,
    args: readonly unknown[] = [],
    options: TaskOptions = {},
  ): Promise<Task<R>> {
    assertKnownKeys("createTask", options, TASK_OPTION_KEYS);
    // There is no database transaction to write in: the task is kept (and run) at once whatever the caller's does.
    const { transaction: _, ...rest } = options as TaskOptions & { transaction?: unknown };
    const task = this.#keep(prepareTask({ ...rest, name, args }));
    await this.enqueued([task]);
    return copy(task) as Task<R>;
  }

  async createTasks(specs: readonly TaskSpec[], _options?: CreateTasksOptions): Promise<Task[]> {
    if (!Array.isArray(specs)) throw new TypeError("createTasks expects an array of task specs");
    const prepared = specs.map((s, i) => prepareTask(s, `specs[${i}].args`)); // all checked before any is kept
    const tasks = prepared.map((p) => this.#keep(p));
    await this.enqueued(tasks);
    return tasks.map((t) => copy(t) as Task);
  }

  async getTask<R = JsonValue>(id: string): Promise<Task<R> | null> {
    const task = this.#tasks.get(validateTaskId(id));
    return task ? (copy(task) as Task<R>) : null;
  }

  async waitForCompletion<R = JsonValue>(id: string, options: WaitOptions = {}): Promise<Task<R> | null> {
    const taskId = validateTaskId(id);
    const timeoutMs = options.timeout === undefined ? undefined : validateSeconds("timeout", options.timeout) * 1000;
    const task = this.#tasks.get(taskId);
    if (!task) throw new TaskNotFoundError(taskId);
    if (FINAL_STATUSES.has(task.status)) return copy(task) as Task<R>;
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (done: Task<unknown> | null) => {
        clearTimeout(timer);
        this.#waiters.get(taskId)?.delete(settle);
        resolve(done && (copy(done) as Task<R>));
      };
      let waiting = this.#waiters.get(taskId);
      if (!waiting) this.#waiters.set(taskId, (waiting = new Set()));
      waiting.add(settle);
      if (timeoutMs !== undefined) timer = setTimeout(() => settle(null), timeoutMs);
    });
  }

  /**
   * Cancels a PENDING task (it becomes CANCELLED and will not run) and returns it; a running task is only marked
   * `cancelRequested`, a finished one returned unchanged.
   */
  async cancelTask(id: string): Promise<Task> {
    const taskId = validateTaskId(id);
    const task = this.#tasks.get(taskId);
    if (!task) throw new TaskNotFoundError(taskId);
    if (task.status === "PENDING") {
      const now = new Date();
      Object.assign(task, { status: "CANCELLED", finishedAt: now, updatedAt: now });
      this.#settled(task);
    } else if (task.status === "PROGRESS") {
      task.cancelRequested = true;
    }
    return copy(task) as Task;
  }

  /** Runs one kept PENDING task with `handler`; rethrows the handler's error when `propagateErrors`. */
  protected async run(task: Task<unknown>, handler: Handler | undefined, propagateErrors: boolean): Promise<void> {
    const failed = await runInline(task, handler, this.constructor.name);
    this.#settled(task);
    if (failed && propagateErrors) throw failed.error;
  }

  /** Forgets every task; whoever waits for one gets null. */
  protected forgetAll(): void {
    this.#tasks.clear();
    for (const waiting of [...this.#waiters.values()]) for (const settle of [...waiting]) settle(null);
    this.#waiters.clear();
  }

  #keep(p: TaskInsert): Task<unknown> {
    const id = String(this.#nextId++);
    const now = new Date();
    const runAt = p.runAt ?? (p.delay > 0 ? new Date(now.getTime() + p.delay * 1000) : null);
    const task = insertedTask(p, id, JSON.parse(p.argsJson) as JsonValue[], now, runAt) as Task<unknown>;
    this.#tasks.set(id, task);
    return task;
  }

  #settled(task: Task<unknown>): void {
    const waiting = this.#waiters.get(task.id);
    if (waiting) for (const settle of [...waiting]) settle(task);
  }
}

/** The `tasks` option of `what` (ImmediateClient, runAll): the handlers, as a Worker takes them. */
export function requiredTasks(options: { tasks?: TaskMap } | undefined, what: string): TaskMap {
  const tasks = options?.tasks;
  if (tasks === null || typeof tasks !== "object") {
    throw new InvalidOptionError("tasks", `${what} needs tasks: { name: handler } or an array of defineTask handles`);
  }
  return tasks;
}

function copy<T>(task: Task<T>): Task<T> {
  return structuredClone(task);
}

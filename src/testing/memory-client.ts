import type { WaitOptions } from "../client.js";
import { validateSeconds } from "../config.js";
import { InvalidOptionError, TaskNotFoundError } from "../errors.js";
import { assertKnownKeys } from "../options.js";
import type { CreateTasksOptions, TaskClient } from "../task-client.js";
import {
  compareIds,
  FINAL_STATUSES,
  insertedTask,
  prepareCreateTask,
  prepareTask,
  validateTaskId,
  type JsonValue,
  type Task,
  type TaskInsert,
  type TaskOptions,
  type TaskSpec,
} from "../task.js";
import type { Handler, TaskMap } from "../worker/registry.js";
import { runInline, type InlineAttempt } from "./run-inline.js";

/**
 * The test modes' shared part: tasks kept in memory under ids 1, 2, 3…, checked by the real client's own checks
 * (prepareTask) before they are kept, and read, awaited and cancelled as the real client does. Unique keys act as
 * the database's unique index does ("keep" returns the live holder, "replace" updates a PENDING one). What happens
 * once a task is kept is the subclass's `enqueued`. Every read returns a copy, as every read of a row does.
 *
 * A `transaction` is accepted and not used: there is no database to write in, so the task is kept (and, by
 * ImmediateClient, run) at once, as if the caller's transaction had committed. Refusing it would leave code that
 * enqueues in its own transaction untestable with a test client.
 */
export abstract class MemoryClient implements TaskClient {
  readonly #tasks = new Map<string, Task<unknown>>();
  readonly #waiters = new Map<string, Set<(task: Task<unknown> | null) => void>>();
  /** uniqueKey → the task that last took it; the key is held while that task is PENDING or PROGRESS. */
  readonly #holders = new Map<string, Task<unknown>>();
  /** Attempts running now, by task id: what cancelTask stops. */
  readonly #running = new Map<string, InlineAttempt>();
  #nextId = 1;

  /** Called with the tasks a createTask or createTasks call just created (PENDING), before the call returns them. */
  protected abstract enqueued(tasks: Task<unknown>[]): Promise<void>;

  async createTask<R = JsonValue>(
    name: string,
    args: readonly unknown[] = [],
    options: TaskOptions = {},
  ): Promise<Task<R>> {
    // The transaction is accepted and not used: there is no database (see the class comment).
    const { task, created } = this.#keep(prepareCreateTask(name, args, options).spec);
    if (created) await this.enqueued([task]);
    return copy(task) as Task<R>;
  }

  async createTasks(specs: readonly TaskSpec[], options: CreateTasksOptions = {}): Promise<Task[]> {
    if (!Array.isArray(specs)) throw new InvalidOptionError("specs", "createTasks expects an array of task specs");
    assertKnownKeys("createTasks", options, ["transaction"]);
    const prepared = specs.map((s, i) => prepareTask(s, `specs[${i}].args`)); // all checked before any is kept
    // In turn, as the real client does with one key given twice in a batch: the later spec finds the first's task.
    const kept = prepared.map((p) => this.#keep(p));
    await this.enqueued(kept.filter((k) => k.created).map((k) => k.task));
    return kept.map((k) => copy(k.task) as Task);
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
   * Cancels a PENDING task (it becomes CANCELLED and will not run) and returns it. A running task is marked
   * `cancelRequested` and its handler's signal fires with a TaskCancelledError: it ends CANCELLED when the handler
   * settles, unless the handler returns successfully (then COMPLETED), as with a worker. A finished task is returned
   * unchanged.
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
      this.#running.get(taskId)?.cancel();
    }
    return copy(task) as Task;
  }

  /** Runs one kept PENDING task with `handler`; rethrows the handler's error when `propagateErrors`. */
  protected async run(task: Task<unknown>, handler: Handler | undefined, propagateErrors: boolean): Promise<void> {
    const failed = await runInline(task, handler, this.constructor.name, this.#running);
    this.#settled(task);
    if (failed && propagateErrors) throw failed.error;
  }

  /** Forgets every task; whoever waits for one gets null. */
  protected forgetAll(): void {
    this.#tasks.clear();
    this.#holders.clear();
    for (const waiting of [...this.#waiters.values()]) for (const settle of [...waiting]) settle(null);
    this.#waiters.clear();
  }

  /**
   * What the real client's insert does with `p`: a new PENDING task (`created`), or the live holder of its uniqueKey,
   * returned as it is ("keep") or, while still PENDING, given p's args, runAt, priority and meta ("replace"). A
   * running holder and "replace" make a new task, which holds the key from then on.
   */
  #keep(p: TaskInsert): { task: Task<unknown>; created: boolean } {
    const now = new Date();
    const runAt = p.runAt ?? (p.delay > 0 ? new Date(now.getTime() + p.delay * 1000) : null);
    const holder = p.uniqueKey === null ? undefined : this.#holders.get(p.uniqueKey);
    if (holder && !FINAL_STATUSES.has(holder.status) && (!p.replace || holder.status === "PENDING")) {
      if (p.replace) {
        Object.assign(holder, {
          args: JSON.parse(p.argsJson) as JsonValue[],
          runAt: runAt ?? now,
          priority: p.priority,
          meta: p.metaJson === null ? {} : (JSON.parse(p.metaJson) as Task["meta"]),
          updatedAt: now,
        });
      }
      return { task: holder, created: false };
    }
    const id = String(this.#nextId++);
    const task = insertedTask(p, id, JSON.parse(p.argsJson) as JsonValue[], now, runAt) as Task<unknown>;
    this.#tasks.set(id, task);
    if (p.uniqueKey !== null) this.#holders.set(p.uniqueKey, task);
    return { task, created: true };
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

/** The order a worker claims due tasks in: priority (higher first), then runAt, then id. */
export function claimOrder(a: Task<unknown>, b: Task<unknown>): number {
  return b.priority - a.priority || a.runAt.getTime() - b.runAt.getTime() || compareIds(a.id, b.id);
}

function copy<T>(task: Task<T>): Task<T> {
  return structuredClone(task);
}

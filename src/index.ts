export {
  SkiplockClient,
  cancelTask,
  closeDefaultClient,
  createTask,
  createTasks,
  getDefaultClient,
  getTask,
  waitForCompletion,
  type ClientOptions,
  type PurgeTasksOptions,
  type WaitOptions,
} from "./client.js";
export { defineTask, type DefineOptions, type EnqueueOptions, type TaskDefinition } from "./define.js";
export { Worker, type WorkerOptions } from "./worker/worker.js";
export { taskContext, type TaskContext } from "./worker/context.js";
export type { Handler, TaskMap } from "./worker/registry.js";
export { migrate, type MigrateResult } from "./db/migrate.js";
export {
  TASK_STATUSES,
  type Isolation,
  type JsonValue,
  type Task,
  type TaskOptions,
  type TaskSpec,
  type TaskStatus,
} from "./task.js";
export { DEFAULT_QUEUE, DEFAULT_SCHEMA, DEFAULT_TIMEOUT, type ConnectionOptions } from "./config.js";
export { consoleLogger, silentLogger, type Logger } from "./logger.js";
export * from "./errors.js";
// Enqueueing: unique keys, meta, the caller's transaction, the queue allow-list, task:enqueued.
export type { ClientEvents, ClientTransaction, CreateTasksOptions, TransactionTaskOptions } from "./client.js";
export { MAX_PRIORITY, MIN_PRIORITY, type UniqueMode } from "./task.js";
export type { TransactionLike } from "./transaction.js";

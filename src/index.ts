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

// Task handles and test modes.
export { setDefaultClient } from "./client.js";
export type { TaskHandle } from "./define.js";
export type { CreateTasksOptions, TaskClient } from "./task-client.js";
export { ImmediateClient, type ImmediateClientOptions } from "./testing/immediate-client.js";
export { DummyClient, type RunAllOptions } from "./testing/dummy-client.js";

// Managing tasks.
export { countTasks, deleteTask, listTasks, retryTask, runTaskNow } from "./client.js";
export type { CountTasksOptions, ListTasksOptions, StatusCounts, TaskCounts, TaskPage } from "./admin.js";

// Progress and cancel.
export type { TaskProgress } from "./task.js";

// Enqueueing: unique keys, meta, the caller's transaction, the queue allow-list, task:enqueued.
export type { ClientEvents, ClientTransaction, TransactionTaskOptions } from "./client.js";
export { MAX_PRIORITY, MIN_PRIORITY, type UniqueMode } from "./task.js";
export type { TransactionLike } from "./transaction.js";

// Per-task retry policy and the worker's events.
export type { Backoff, RetryOn, RetryPolicy } from "./retry-policy.js";
export type { RunningTask, WorkerEventName, WorkerEvents } from "./worker/events.js";

// Schedules.
export type { CheckedSchedules, Schedule, ScheduleFields, ScheduledTaskHandle } from "./schedule/definition.js";
export type { ScheduleInfo } from "./sql/schedule-admin.js";

// The dashboard and the worker registry.
export { createDashboard, type Dashboard, type DashboardOptions, type DashboardStats } from "./dashboard/index.js";
export type { WorkerInfo } from "./sql/workers.js";

// Operations: Prometheus metrics and logs.
export { DEFAULT_DURATION_BUCKETS, UNKNOWN_TASK, type MetricsOptions } from "./metrics.js";
export { serveMetrics, type MetricsServer, type MetricsServerOptions } from "./metrics-server.js";
export {
  LOG_FORMATS,
  LOG_LEVELS,
  pinoLogger,
  type LogFormat,
  type LogLevel,
  type PinoLoggerOptions,
} from "./logger.js";

// The dashboard's trigger endpoints (api/run, api/run-one, api/execute/:id): their settings and their answer.
export type { RunDueResult, RunnerSettings, TaskRun } from "./runner/run-due.js";

// Scale-out: Redis Sentinel and TLS for the doorbell.
export type { RedisTlsOptions } from "./notify/redis-tls.js";

// Task actions that act only on the state the caller saw (retryTask, cancelTask, runTaskNow, deleteTask options).
export type { TaskActionOptions } from "./task-expectation.js";

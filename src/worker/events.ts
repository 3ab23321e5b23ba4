import type { JsonValue, TaskProgress } from "../task.js";

/** A task as a worker's task events describe it: what the worker knows of the attempt it ran. */
export interface RunningTask {
  id: string;
  name: string;
  queue: string;
  args: JsonValue[];
  /** 1 for the first attempt. */
  attempt: number;
  retryCount: number;
  maxRetries: number;
  workerId: string;
}

/**
 * What a worker's services report as they work, each event with its data. The worker is an EventEmitter of these
 * (`worker.on("swept", …)`); a `run-worker` started with an IPC channel forwards them to its parent. Tests and
 * supervisors wait on these, never on log text.
 */
export interface WorkerEvents {
  /** A handler is about to run. */
  "task:started": [{ task: RunningTask }];
  /** A handler reported progress (as recorded, at most about once a second per task). */
  "task:progress": [{ task: RunningTask; progress: TaskProgress }];
  /** The task's result is stored. */
  "task:completed": [{ task: RunningTask; result: JsonValue; duration: number }];
  /**
   * The task failed for good (no retry left, or a failure no retry can fix); `error` is the stored text (message and
   * stack), `type` and `message` the error's name and message.
   */
  "task:failed": [{ task: RunningTask; error: string; type: string; message: string; duration: number }];
  /** The attempt failed and the task is queued again for `runAt`. */
  "task:retrying": [{ task: RunningTask; error: string; type: string; message: string; duration: number; runAt: Date }];
  /** A running task was cancelled at the request of `cancelTask`. */
  "task:cancelled": [{ task: RunningTask; duration: number }];
  /** This worker's sweep took back a lost worker's task: queued again (`requeued`) or failed for good. */
  "task:swept": [
    {
      id: string;
      name: string;
      queue: string;
      /** The attempt the lost worker held. */
      attempt: number;
      outcome: "requeued" | "handed-back" | "failed" | "cancelled";
      workerId: string | null;
    },
  ];
  /**
   * Something went wrong outside any one task's outcome: a listener that threw (`during`: "a task:completed
   * listener"), or a task's retryOn or backoff that threw. Logged too; the worker goes on.
   */
  "worker:error": [{ error: Error; during: string }];
  "worker:started": [{ workerId: string; queues: string[]; redis: "connected" | "unreachable" | "off" }];
  "worker:stopping": [{ running: number }];
  "worker:stopped": [];
  /** A claim failed; the loop backs off and tries again. */
  "claim:failed": [{ error: Error; transient: boolean }];
  /** A claim succeeded after failing. */
  "claim:restored": [];
  /** A claim statement came back with `rows` tasks (tests and benchmarks count claims per task with it). */
  "claim:answered": [{ rows: number }];
  /** Prefetched tasks handed back because their leases may have been swept (see docs/architecture.md). */
  "buffer:handed-back": [{ tasks: number }];
  /** A claim returned a lease this worker already holds (a claim a Postgres crash undid); not started twice. */
  "claim:duplicate": [{ id: string; attempt: number }];
  beat: [{ rows: number }];
  "beat:failed": [{ error: string }];
  "beat:restored": [];
  /** This worker's sweep moved the tasks of lost workers. */
  swept: [
    { requeued: string[]; handedBack: string[]; failed: string[]; cancelled: string[]; workers: (string | null)[] },
  ];
  /** An outcome matched no row: the attempt had moved on (swept, handed back, re-claimed). */
  "outcome:discarded": [{ id: string; attempt: number; kind: "completion" | "failure" }];
  /** A batch of outcomes could not be written; it is kept and retried. */
  "outcomes:failed": [{ error: Error; retryInMs: number }];
  /** Postgres refused one task's outcome; the task was failed instead. */
  "outcome:refused": [{ id: string; attempt: number; error: string }];
  /** Redis became unreachable: wake-ups stop and the worker polls. */
  "redis:down": [];
  /** Redis answers again. */
  "redis:up": [];
  /** Redis stopped answering on connections that still looked open; they are being replaced. */
  "redis:silent": [];
  /** The stored schedules were brought in line with this worker's (see Schedules); `removed` were marked removed. */
  "schedules:reconciled": [{ declared: string[]; removed: string[] }];
  /** This worker enqueued a schedule's tick; `backfill`: a tick missed while no worker ran (see `backfill`). */
  "schedule:enqueued": [{ name: string; tick: Date; taskId: string; backfill: boolean }];
  /** The scheduler woke and read the database's clock (`offsetMs`: database minus worker); it sleeps `sleepMs`. */
  "schedule:checked": [{ now: Date; offsetMs: number; sleepMs: number }];
}

export type WorkerEventName = keyof WorkerEvents;

/** How a service reports an event: the worker's `emit`, typed. */
export type Signal = <K extends WorkerEventName>(name: K, ...args: WorkerEvents[K]) => void;

/** A Signal that goes nowhere, for services used on their own. */
export const noSignal: Signal = () => {};

/**
 * Whether anyone listens to an event: services check it before building an event's data, so that per-task events
 * cost nothing (no object, no lookup beyond this) when nobody listens.
 */
export type Listening = (name: WorkerEventName) => boolean;

export const nobodyListens: Listening = () => false;

const TASK_EVENTS = [
  "task:started",
  "task:progress",
  "task:completed",
  "task:failed",
  "task:retrying",
  "task:cancelled",
  "task:swept",
] as const satisfies readonly WorkerEventName[];

/** Events about one task, emitted per task: not forwarded to a parent process unless asked (forward-events.ts). */
export const TASK_EVENT_NAMES: ReadonlySet<WorkerEventName> = new Set(TASK_EVENTS);

/**
 * Events as frequent as tasks or claims: forwarded to a parent process only with `--ipc-task-events`, since a draining
 * worker claims hundreds of times a second.
 */
export const FREQUENT_EVENT_NAMES: ReadonlySet<WorkerEventName> = new Set([...TASK_EVENTS, "claim:answered"]);

/** Every event name, for code that forwards them all (run-worker to its parent process). */
export const WORKER_EVENT_NAMES = [
  ...TASK_EVENTS,
  "worker:error",
  "worker:started",
  "worker:stopping",
  "worker:stopped",
  "claim:failed",
  "claim:restored",
  "claim:answered",
  "buffer:handed-back",
  "claim:duplicate",
  "beat",
  "beat:failed",
  "beat:restored",
  "swept",
  "outcome:discarded",
  "outcomes:failed",
  "outcome:refused",
  "redis:down",
  "redis:up",
  "redis:silent",
  "schedules:reconciled",
  "schedule:enqueued",
  "schedule:checked",
] as const satisfies readonly WorkerEventName[];

// Compiles only while WORKER_EVENT_NAMES lists every event.
const everyEventListed: Exclude<WorkerEventName, (typeof WORKER_EVENT_NAMES)[number]> extends never ? true : never =
  true;
void everyEventListed;

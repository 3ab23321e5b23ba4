import { perTable, run, type Queryable, type Statement } from "../db/statements.js";

/*
 * The worker registry (migration 0008): what each worker process records about itself. Every statement names one
 * row by primary key; the refresh runs once per heartbeat interval per worker, never per task.
 */

/** What a worker records when it starts. */
export interface WorkerRecord {
  id: string;
  host: string;
  pid: number;
  queues: readonly string[];
  concurrency: number;
  schedules: readonly string[];
  version: string;
  /** Seconds. */
  heartbeatInterval: number;
  /** Seconds. */
  staleAfter: number;
}

/** How long a row stays once its worker stopped or was lost. */
const PRUNE_AFTER = "1 day";

/*
 * An upsert: a worker given a fixed `workerId` and restarted takes its row back. The prune rides along (one round
 * trip at start): rows are only added by a start, so pruning there keeps the table bounded.
 */
const registerStatement = perTable(
  "worker_register",
  (workers) => `WITH pruned AS (
     DELETE FROM ${workers}
      WHERE id <> $1 AND coalesce(stopped_at, last_seen_at) < now() - interval '${PRUNE_AFTER}'
   )
   INSERT INTO ${workers} AS w (id, host, pid, queues, concurrency, schedules, version, heartbeat_interval, stale_after)
   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
   ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, queues = excluded.queues,
     concurrency = excluded.concurrency, schedules = excluded.schedules, version = excluded.version,
     heartbeat_interval = excluded.heartbeat_interval, stale_after = excluded.stale_after, running = 0,
     started_at = now(), last_seen_at = now(), stopped_at = NULL`,
);

export async function registerWorker(q: Queryable, workers: string, r: WorkerRecord): Promise<void> {
  await run(q, registerStatement(workers), [
    r.id,
    r.host,
    r.pid,
    r.queues,
    r.concurrency,
    r.schedules,
    r.version,
    r.heartbeatInterval,
    r.staleAfter,
  ]);
}

/**
 * The heartbeat thread's companion statement ($1 worker id, $2 tasks running): keeps last_seen_at fresh. A stopped
 * row stays stopped, so a beat that lands after the clean stop changes nothing.
 */
export const workerSeenStatement: (workers: string) => Statement = perTable(
  "worker_seen",
  (workers) => `UPDATE ${workers} SET last_seen_at = now(), running = $2 WHERE id = $1 AND stopped_at IS NULL`,
);

const stopStatement = perTable(
  "worker_stop",
  (workers) =>
    `UPDATE ${workers} SET stopped_at = now(), last_seen_at = now(), running = 0 WHERE id = $1 AND stopped_at IS NULL`,
);

export async function markWorkerStopped(q: Queryable, workers: string, id: string): Promise<void> {
  await run(q, stopStatement(workers), [id]);
}

/** A worker as `listWorkers()` gives it. Times in seconds, as in the tasks table. */
export interface WorkerInfo {
  id: string;
  /** live: seen within its staleAfter; lost: not seen for longer (it died or lost touch); stopped: stopped cleanly. */
  status: "live" | "lost" | "stopped";
  host: string;
  pid: number;
  queues: string[];
  concurrency: number;
  /** Tasks running at its last refresh. */
  running: number;
  schedules: string[];
  version: string;
  heartbeatInterval: number;
  staleAfter: number;
  startedAt: Date;
  lastSeenAt: Date;
  stoppedAt: Date | null;
}

interface WorkerRow {
  id: string;
  status: WorkerInfo["status"];
  host: string;
  pid: number;
  queues: string[];
  concurrency: number;
  running: number;
  schedules: string[];
  version: string;
  heartbeat_interval: number;
  stale_after: number;
  started_at: Date;
  last_seen_at: Date;
  stopped_at: Date | null;
}

/** Live workers first, then lost, then stopped; newest start first within each. The database's clock judges. */
const listStatement = perTable(
  "worker_list",
  (workers) => `SELECT w.*, s.status FROM ${workers} w
     CROSS JOIN LATERAL (SELECT CASE
       WHEN w.stopped_at IS NOT NULL THEN 'stopped'
       WHEN w.last_seen_at < now() - w.stale_after * interval '1 second' THEN 'lost'
       ELSE 'live' END AS status) s
    ORDER BY CASE s.status WHEN 'live' THEN 0 WHEN 'lost' THEN 1 ELSE 2 END, w.started_at DESC, w.id`,
);

export async function listWorkerRows(q: Queryable, workers: string): Promise<WorkerInfo[]> {
  const { rows } = await run<WorkerRow>(q, listStatement(workers), []);
  return rows.map((r) => ({
    id: r.id,
    status: r.status,
    host: r.host,
    pid: r.pid,
    queues: r.queues,
    concurrency: r.concurrency,
    running: r.running,
    schedules: r.schedules,
    version: r.version,
    heartbeatInterval: r.heartbeat_interval,
    staleAfter: r.stale_after,
    startedAt: r.started_at,
    lastSeenAt: r.last_seen_at,
    stoppedAt: r.stopped_at,
  }));
}

// @ts-check
// The chaos run's task handlers, loaded by `skiplock run-worker --tasks bench/chaos/tasks.js`.
//
// Every execution is recorded twice before it does its work:
//   1. a line appended to this process's trace file (CHAOS_TRACE_DIR/<pid>.jsonl): a write(2) that returned is in
//      the kernel and survives a kill -9 of this process an instant later, so the trace knows of every handler
//      that started, even one killed before it could reach Postgres;
//   2. a row in the ledger table (task_id, attempt, pid, at), on this module's own pg pool, retried through
//      Postgres restarts (keyed by a run id, so a retried insert whose first commit did land adds nothing).
// The end of each execution (ok, threw, aborted) goes to the trace only.
// Every handler takes the task's key (its number in the run, 0..N-1) first and returns { k }.
import { randomUUID } from "node:crypto";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { taskContext } from "../../dist/src/index.js";

const schema = process.env.SKIPLOCK_SCHEMA ?? "skiplock";
const traceDir = process.env.CHAOS_TRACE_DIR;
if (!traceDir) throw new Error("bench/chaos/tasks.js needs CHAOS_TRACE_DIR");
const traceFile = join(traceDir, `${process.pid}.jsonl`);

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 8, connectionTimeoutMillis: 2000 });
pool.on("error", () => {}); // a server restart ends idle connections; the next query opens a new one

/** How long a handler keeps trying to write its ledger row before it gives up (and fails its task). */
const LEDGER_PATIENCE_MS = 120_000;

/** @param {Record<string, unknown>} event */
function trace(event) {
  appendFileSync(traceFile, `${JSON.stringify(event)}\n`);
}

/**
 * Records the start of this execution (trace, then ledger) and returns its run id.
 * @param {number} k
 */
async function begin(k) {
  const ctx = taskContext();
  const run = randomUUID();
  const at = Date.now();
  trace({
    e: "start",
    run,
    task: ctx.id,
    k,
    name: ctx.name,
    attempt: ctx.attempt,
    retryCount: ctx.retryCount,
    pid: process.pid,
    at,
  });
  const sql = `INSERT INTO "${schema}".ledger (run_id, task_id, attempt, pid, at) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (run_id) DO NOTHING`;
  const deadline = Date.now() + LEDGER_PATIENCE_MS;
  for (let i = 0; ; i++) {
    try {
      await pool.query(sql, [run, ctx.id, ctx.attempt, process.pid, new Date(at)]);
      return run;
    } catch (err) {
      if (Date.now() > deadline) {
        trace({ e: "ledger-gave-up", run, error: String(err), at: Date.now() });
        throw new Error(`chaos ledger unreachable for ${LEDGER_PATIENCE_MS} ms: ${String(err)}`, { cause: err });
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** i, 500)));
    }
  }
}

/**
 * @param {string} run
 * @param {"ok" | "threw" | "aborted"} outcome
 */
function end(run, outcome) {
  trace({ e: "end", run, outcome, pid: process.pid, at: Date.now() });
}

/**
 * Waits `ms`, or rejects with the task's abort reason (timeout, shutdown) first.
 * @param {number} ms
 */
function pause(ms) {
  const { signal } = taskContext();
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

/**
 * @param {number} k
 * @param {number} ms
 */
async function sleeper(k, ms) {
  const run = await begin(k);
  try {
    await pause(ms);
  } catch (err) {
    end(run, "aborted");
    throw err;
  }
  end(run, "ok");
  return { k };
}

/** Next to nothing: the ledger write is the work. @param {number} k */
export async function quick(k) {
  const run = await begin(k);
  end(run, "ok");
  return { k };
}

/** A short sleep, 10–200 ms. @param {number} k @param {number} ms */
export function nap(k, ms) {
  return sleeper(k, ms);
}

/** A slow one, 1–3 s. @param {number} k @param {number} ms */
export function slow(k, ms) {
  return sleeper(k, ms);
}

/** A long one, 5–8 s: enqueued to be running when a worker gets SIGTERM. @param {number} k @param {number} ms */
export function long(k, ms) {
  return sleeper(k, ms);
}

/** Throws on its first attempt (retryCount 0), succeeds on a retry. @param {number} k */
export async function flaky(k) {
  const run = await begin(k);
  if (taskContext().retryCount === 0) {
    end(run, "threw");
    throw new Error(`flaky task ${k}: fails on its first attempt`);
  }
  end(run, "ok");
  return { k };
}

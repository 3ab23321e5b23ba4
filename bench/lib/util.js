// @ts-check
// Shared helpers for the benchmark: clocks, statistics, /proc readings, child worker processes.
import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";

export const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/**
 * Milliseconds on CLOCK_MONOTONIC. process.hrtime reads the same system-wide clock in every process on the
 * machine, so a timestamp taken in a worker child can be compared with one taken here.
 * @returns {number}
 */
export function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** @param {number} ms */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A short random suffix for schema and queue names: every run gets fresh ones. */
export function uniqueSuffix() {
  return randomBytes(4).toString("hex");
}

/**
 * @param {number[]} values
 * @param {number} p  0..100
 */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return (sorted[lo] ?? NaN) + ((sorted[hi] ?? NaN) - (sorted[lo] ?? NaN)) * (rank - lo);
}

/** @param {number[]} values */
export function median(values) {
  return percentile(values, 50);
}

// ---------------------------------------------------------------------------------------------------------------
// /proc

let clkTck = 100;
try {
  clkTck = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
} catch {
  /* Linux default */
}

/**
 * utime, stime, cutime, cstime of one process, in seconds; null once it is gone.
 * @param {number} pid
 * @returns {{ user: number, sys: number, childUser: number, childSys: number, comm: string } | null}
 */
export function procTimes(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  const comm = text.slice(open + 1, close);
  // Fields after the command: state is field 3, so utime (14) is index 11 of this list.
  const f = text.slice(close + 2).split(" ");
  const n = (/** @type {number} */ i) => Number(f[i]) / clkTck;
  return { user: n(11), sys: n(12), childUser: n(13), childSys: n(14), comm };
}

/**
 * CPU seconds (user + sys) a process has used so far, all its threads included.
 * @param {number} pid
 */
export function procCpu(pid) {
  const t = procTimes(pid);
  return t ? t.user + t.sys : NaN;
}

/**
 * VmRSS and VmHWM (peak RSS) in MiB.
 * @param {number} pid
 * @returns {{ rss: number, hwm: number } | null}
 */
export function procMem(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const kb = (/** @type {string} */ key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

/**
 * CPU seconds used by every process named `comm` (e.g. all Postgres backends and helpers), including the
 * reaped children of each (a backend that exits is added to the postmaster's child times).
 * @param {string} comm
 */
export function cpuOfCommand(comm) {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const t = procTimes(Number(entry));
    if (t && t.comm === comm) total += t.user + t.sys + t.childUser + t.childSys;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------------------------
// Worker children

/**
 * @typedef {{ type: "first", t: number }
 *   | { type: "start", i: number, t: number }
 *   | { type: "done", count: number, t: number }
 *   | { type: "ready", t: number }
 *   | { type: "info", key: string, value: string | number | boolean }
 *   | { type: "heap", t: number, oldSpaceMiB: number, heapTotalMiB: number }} ChildMessage
 */

/**
 * A worker process under measurement: its messages, memory samples, and a way to stop it.
 */
export class WorkerChild {
  /**
   * @param {string} label
   * @param {string[]} args  node arguments (script first)
   * @param {Record<string, string>} env
   */
  constructor(label, args, env) {
    this.label = label;
    this.spawnedAt = nowMs();
    this.proc = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    if (this.proc.pid === undefined) throw new Error(`${label}: could not spawn worker`);
    /** @type {number} */
    this.pid = this.proc.pid;
    /** Last lines of output, shown if something goes wrong. @type {string[]} */
    this.output = [];
    const keep = (/** @type {Buffer} */ chunk) => {
      this.output.push(...chunk.toString().split("\n").filter(Boolean));
      if (this.output.length > 200) this.output.splice(0, this.output.length - 200);
    };
    this.proc.stdout?.on("data", keep);
    this.proc.stderr?.on("data", keep);
    /** @type {number | null} */
    this.firstAt = null;
    /** @type {number | null} */
    this.doneAt = null;
    /** @type {number | null} */
    this.readyAt = null;
    /** @type {Map<number, number>} */
    this.starts = new Map();
    /** Facts the worker reports about its own configuration. @type {Record<string, string | number | boolean>} */
    this.info = {};
    /** The worker's own V8 heap reports, when it was asked for them. @type {{ t: number, oldSpaceMiB: number, heapTotalMiB: number }[]} */
    this.heap = [];
    /** @type {((msg: ChildMessage) => void)[]} */
    this.listeners = [];
    /** @type {number | null} */
    this.exitCode = null;
    this.exited = new Promise((resolve) => {
      this.proc.on("exit", (code, signal) => {
        this.exitCode = code ?? (signal ? 128 : 0);
        resolve(undefined);
      });
    });
    this.proc.on("message", (/** @type {ChildMessage} */ msg) => {
      if (msg.type === "first") this.firstAt ??= msg.t;
      else if (msg.type === "done") this.doneAt ??= msg.t;
      else if (msg.type === "ready") this.readyAt ??= msg.t;
      else if (msg.type === "start") this.starts.set(msg.i, msg.t);
      else if (msg.type === "info") this.info[msg.key] = msg.value;
      else if (msg.type === "heap") this.heap.push(msg);
      for (const l of this.listeners) l(msg);
    });
    /** @type {{ t: number, rss: number }[]} */
    this.samples = [];
    /** @type {NodeJS.Timeout | null} */
    this.sampler = null;
  }

  /** Samples RSS every `everyMs`. @param {number} everyMs */
  sampleMemory(everyMs) {
    const take = () => {
      const m = procMem(this.pid);
      if (m) this.samples.push({ t: nowMs(), rss: m.rss });
    };
    take();
    this.sampler = setInterval(take, everyMs);
  }

  stopSampling() {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = null;
  }

  get alive() {
    return this.exitCode === null;
  }

  /**
   * Resolves when `pred` holds for a message (or was already true); rejects after `timeoutMs` or if the child exits.
   * @param {string} what
   * @param {() => boolean} pred
   * @param {number} timeoutMs
   */
  waitFor(what, pred, timeoutMs) {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => finish(new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for ${what}`)),
        timeoutMs,
      );
      const listener = () => {
        if (pred()) finish(null);
      };
      const onExit = () =>
        finish(new Error(`${this.label}: worker exited (code ${this.exitCode}) while waiting for ${what}`));
      const finish = (/** @type {Error | null} */ err) => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== listener);
        this.proc.off("exit", onExit);
        if (err) reject(err);
        else resolve(undefined);
      };
      this.listeners.push(listener);
      this.proc.on("exit", onExit);
    });
  }

  /** Asks the worker to shut down (SIGTERM), kills it after `graceMs`. @param {number} [graceMs] */
  async stop(graceMs = 15_000) {
    this.stopSampling();
    if (!this.alive) return;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** A readable tail of the child's output. */
  tail() {
    return this.output.slice(-30).join("\n");
  }
}

/**
 * Polls `check` every `everyMs` until it returns true; throws after `timeoutMs`.
 * @param {string} what
 * @param {() => Promise<boolean>} check
 * @param {number} timeoutMs
 * @param {number} [everyMs]
 * @param {WorkerChild} [child]  fail early if this worker dies
 */
export async function pollUntil(what, check, timeoutMs, everyMs = 20, child) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (child && !child.alive)
      throw new Error(`${child.label}: worker exited (code ${child.exitCode}) during ${what}\n${child.tail()}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(everyMs);
  }
}

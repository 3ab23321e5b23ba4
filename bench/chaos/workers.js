// @ts-check
// Supervised `skiplock run-worker` processes: a fixed number of slots, each restarted when its process exits.
// Every process started, every signal the run sends and every exit is written to the event log.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { sleep } from "./servers.js";

/**
 * @typedef {object} ChaosEvent
 * @property {number} at epoch ms
 * @property {string} kind
 * @property {number} [pid]
 * @property {number} [slot]
 * @property {Record<string, unknown>} [detail]
 */

/**
 * @typedef {object} WorkerProc
 * @property {number} slot
 * @property {number} pid
 * @property {number} startedAt
 * @property {import("node:child_process").ChildProcess} child
 * @property {Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>} exited
 * @property {"running" | "killed" | "terminated" | "exited"} state
 */

export class WorkerPool {
  /** @type {(WorkerProc | null)[]} */
  slots = [];
  /** @type {ChaosEvent[]} */
  events;
  #stopping = false;
  #starts = 0;
  /** Bound on process starts over the whole run (restarts included). */
  static MAX_STARTS = 1000;

  /**
   * @param {object} o
   * @param {number} o.count
   * @param {string[]} o.argv arguments after `node`
   * @param {Record<string, string>} o.env
   * @param {string} o.cwd
   * @param {string} o.logDir one log file per worker process: <slot>-<pid>.log
   * @param {ChaosEvent[]} o.events
   * @param {number} o.restartDelayMs
   */
  constructor(o) {
    this.o = o;
    this.events = o.events;
    this.slots = Array.from({ length: o.count }, () => null);
  }

  /** @param {string} kind @param {Partial<ChaosEvent>} [rest] */
  #event(kind, rest = {}) {
    this.events.push({ at: Date.now(), kind, ...rest });
  }

  start() {
    for (let slot = 0; slot < this.o.count; slot++) this.#spawn(slot);
  }

  /** @param {number} slot */
  #spawn(slot) {
    if (this.#stopping) return;
    if (++this.#starts > WorkerPool.MAX_STARTS) throw new Error(`more than ${WorkerPool.MAX_STARTS} worker starts`);
    const child = spawn(process.execPath, this.o.argv, {
      cwd: this.o.cwd,
      env: { ...process.env, ...this.o.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const pid = child.pid ?? -1;
    const log = createWriteStream(join(this.o.logDir, `w${slot}-${pid}.log`));
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    /** @type {WorkerProc} */
    const proc = {
      slot,
      pid,
      startedAt: Date.now(),
      child,
      state: "running",
      exited: new Promise((resolve) =>
        child.on("exit", (code, signal) => {
          const at = Date.now();
          log.end();
          resolve({ code, signal, at });
        }),
      ),
    };
    this.slots[slot] = proc;
    this.#event("worker-start", { pid, slot });
    void proc.exited.then(async ({ code, signal, at }) => {
      const expected = proc.state !== "running";
      if (proc.state === "running") proc.state = "exited";
      this.events.push({ at, kind: "worker-exit", pid, slot, detail: { code, signal, expected, by: proc.state } });
      if (this.slots[slot] !== proc) return;
      this.slots[slot] = null;
      await sleep(this.o.restartDelayMs);
      if (!this.#stopping && this.slots[slot] === null) this.#spawn(slot);
    });
  }

  /** @returns {WorkerProc[]} the processes running now */
  live() {
    return /** @type {WorkerProc[]} */ (this.slots.filter((p) => p !== null && p.state === "running"));
  }

  /**
   * kill -9 of one process.
   * @param {WorkerProc} proc
   */
  sigkill(proc) {
    proc.state = "killed";
    this.#event("sigkill", { pid: proc.pid, slot: proc.slot });
    proc.child.kill("SIGKILL");
  }

  /**
   * SIGTERM of one process (a graceful shutdown); resolves its exit.
   * @param {WorkerProc} proc
   */
  sigterm(proc) {
    proc.state = "terminated";
    this.#event("sigterm", { pid: proc.pid, slot: proc.slot });
    proc.child.kill("SIGTERM");
    return proc.exited;
  }

  /**
   * Stops everything: SIGTERM to each process, SIGKILL to what is left after `graceMs`. No restarts after this.
   * @param {number} graceMs
   */
  async stopAll(graceMs) {
    this.#stopping = true;
    const procs = this.live();
    for (const p of procs) {
      p.state = "terminated";
      this.#event("final-sigterm", { pid: p.pid, slot: p.slot });
      p.child.kill("SIGTERM");
    }
    await Promise.race([Promise.all(procs.map((p) => p.exited)), sleep(graceMs)]);
    this.killNow();
    await Promise.all(procs.map((p) => p.exited));
  }

  /** Last resort: SIGKILL every process still up, synchronously. */
  killNow() {
    this.#stopping = true;
    for (const p of this.slots)
      if (p && p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
  }
}

// @ts-check
// A task thread: loads the tasks module once, then runs one task at a time on request. The main thread terminates
// it when a task outlives its timeout, or its cancel grace, which ends even a handler that never yields
// (`while (true) {}`). Plain JavaScript so it loads the same way from the sources and the build.
import { parentPort, workerData } from "node:worker_threads";
import { contextStorage } from "./context.js";
import { isDefinition, loadTasksModule } from "./tasks-module.js";

/** @type {Map<string, (...args: any[]) => unknown>} */
const handlers = new Map();
/** Each definition's retryOn: judged here, where the error is still of its own class (a clone would not be). */
/** @type {Map<string, (error: unknown) => unknown>} */
const retryOns = new Map();
for (const [key, entry] of Object.entries(await loadTasksModule(workerData.moduleUrl))) {
  if (isDefinition(entry)) {
    handlers.set(entry.name, entry.handler);
    const retryOn = /** @type {{ retryOn?: unknown }} */ (entry.options ?? {}).retryOn;
    if (typeof retryOn === "function") retryOns.set(entry.name, /** @type {(error: unknown) => unknown} */ (retryOn));
  } else handlers.set(key, entry);
}

/**
 * The task's retry policy's verdict on an error: final (no retry) for a PermanentError (known by its code) or when
 * retryOn returns false; a retryOn that throws leaves the error retry-worthy and is reported.
 * @param {string} name
 * @param {unknown} error
 */
function verdict(name, error) {
  /** @type {{ final: boolean, errorType?: string, errorMessage?: string, policyError?: string }} */
  const v = { final: false };
  if (error instanceof Error) {
    v.errorType = error.name;
    v.errorMessage = error.message;
  }
  if (/** @type {{ code?: unknown } | null} */ (error)?.code === "PERMANENT") v.final = true;
  else {
    const retryOn = retryOns.get(name);
    try {
      if (retryOn && retryOn(error) === false) v.final = true;
    } catch (err) {
      v.policyError = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    }
  }
  return v;
}

/** @type {AbortController | null} */
let current = null;
/** Reports (progress, setMeta) of the running task waiting for the main thread's answer, by number. */
/** @type {Map<number, { resolve: () => void, reject: (e: Error) => void }>} */
const reports = new Map();
let nextReport = 1;

/**
 * An error as the main thread sent it: structured cloning keeps neither the class nor `code` of skiplock's errors,
 * so they come as `{ name, message, code }` and are rebuilt with those.
 * @param {any} data
 */
function revive(data) {
  if (data instanceof Error || data === null || typeof data !== "object") return data;
  const e = /** @type {Error & { code?: string }} */ (new Error(data.message));
  e.name = data.name;
  if (data.code !== undefined) e.code = data.code;
  return e;
}

/**
 * Sends a progress or setMeta report to the main thread, which checks it (a bad value comes back as the typed error's
 * name, code and message) and writes it; resolves as the main thread's writer resolves.
 * @param {number} runId
 * @param {Record<string, unknown>} fields
 * @returns {Promise<void>}
 */
function report(runId, fields) {
  const seq = nextReport++;
  return new Promise((resolve, reject) => {
    reports.set(seq, { resolve, reject });
    try {
      parentPort?.postMessage({ type: "report", runId, seq, ...fields });
    } catch (err) {
      // Not even structured-clonable (a function in a setMeta patch): certainly not JSON.
      reports.delete(seq);
      reject(err);
    }
  });
}

/**
 * @param {{ runId: number, name: string, args: unknown[], ctx: Record<string, unknown> }} msg
 */
async function run(msg) {
  const handler = handlers.get(msg.name);
  const controller = new AbortController();
  current = controller;
  const runId = msg.runId;
  const ctx = {
    ...msg.ctx,
    signal: controller.signal,
    /** @param {number} fraction @param {string} [message] */
    progress: (fraction, message) => report(runId, { kind: "progress", fraction, message }),
    /** @param {Record<string, unknown>} patch */
    setMeta: (patch) => report(runId, { kind: "meta", patch }),
  };
  try {
    if (!handler) throw new Error(`task ${JSON.stringify(msg.name)} is not exported by the tasks module`);
    // The main thread refuses such rows before sending them; spreading an array-like `{ length: 1e8 }` would stall.
    if (!Array.isArray(msg.args)) throw new TypeError("task arguments must be an array");
    const value = await contextStorage.run(/** @type {any} */ (ctx), () => handler.apply(ctx, msg.args));
    try {
      parentPort?.postMessage({ type: "done", runId: msg.runId, ok: true, value });
    } catch (err) {
      // Not even structured-clonable (a function, a class instance with methods…): certainly not JSON.
      const e = /** @type {Error} */ (err);
      parentPort?.postMessage({ type: "done", runId: msg.runId, ok: false, notJson: e.message });
    }
  } catch (error) {
    const v = verdict(msg.name, error);
    try {
      parentPort?.postMessage({ type: "done", runId: msg.runId, ok: false, error, ...v });
    } catch {
      parentPort?.postMessage({ type: "done", runId: msg.runId, ok: false, error: String(error), ...v });
    }
  } finally {
    current = null;
    // Reports the main thread will not answer any more (the task is over): settled, not left hanging.
    for (const r of reports.values()) r.resolve();
    reports.clear();
  }
}

parentPort?.on("message", (/** @type {{ type: string } & Record<string, any>} */ msg) => {
  if (msg.type === "run") void run(/** @type {any} */ (msg));
  else if (msg.type === "abort") current?.abort(revive(msg.reason));
  else if (msg.type === "reported") {
    const r = reports.get(msg.seq);
    if (!r) return;
    reports.delete(msg.seq);
    if (msg.error) r.reject(revive(msg.error));
    else r.resolve();
  }
});
parentPort?.postMessage({ type: "ready" });

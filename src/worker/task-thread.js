// @ts-check
// A task thread: loads the tasks module once, then runs one task at a time on request. The main thread terminates
// it when a task outlives its timeout, which ends even a handler that never yields (`while (true) {}`). Plain
// JavaScript so it loads the same way from the sources and the build.
import { parentPort, workerData } from "node:worker_threads";
import { contextStorage } from "./context.js";
import { isDefinition, loadTasksModule } from "./tasks-module.js";

/** @type {Map<string, (...args: any[]) => unknown>} */
const handlers = new Map();
for (const [key, entry] of Object.entries(await loadTasksModule(workerData.moduleUrl))) {
  if (isDefinition(entry)) handlers.set(entry.name, entry.handler);
  else handlers.set(key, entry);
}

/** @type {AbortController | null} */
let current = null;

/**
 * @param {{ runId: number, name: string, args: unknown[], ctx: Omit<import("./context.js").TaskContext, "signal"> }} msg
 */
async function run(msg) {
  const handler = handlers.get(msg.name);
  const controller = new AbortController();
  current = controller;
  const ctx = { ...msg.ctx, signal: controller.signal };
  try {
    if (!handler) throw new Error(`task ${JSON.stringify(msg.name)} is not exported by the tasks module`);
    // The main thread refuses such rows before sending them; spreading an array-like `{ length: 1e8 }` would stall.
    if (!Array.isArray(msg.args)) throw new TypeError("task arguments must be an array");
    const value = await contextStorage.run(ctx, () => handler.apply(ctx, msg.args));
    try {
      parentPort?.postMessage({ type: "done", runId: msg.runId, ok: true, value });
    } catch (err) {
      // Not even structured-clonable (a function, a class instance with methods…): certainly not JSON.
      const e = /** @type {Error} */ (err);
      parentPort?.postMessage({ type: "done", runId: msg.runId, ok: false, notJson: e.message });
    }
  } catch (error) {
    try {
      parentPort?.postMessage({ type: "done", runId: msg.runId, ok: false, error });
    } catch {
      parentPort?.postMessage({ type: "done", runId: msg.runId, ok: false, error: String(error) });
    }
  } finally {
    current = null;
  }
}

parentPort?.on("message", (/** @type {{ type: string } & Record<string, any>} */ msg) => {
  if (msg.type === "run") void run(/** @type {any} */ (msg));
  else if (msg.type === "abort") current?.abort(msg.reason);
});
parentPort?.postMessage({ type: "ready" });

// @ts-check
// The heartbeat loop, on a thread of its own so that a handler keeping the main thread busy (CPU-bound work in
// inline mode) does not stop its own task's heartbeat. Plain JavaScript: it is loaded as is, from the sources or
// the build. It runs one statement, given by the main thread, every `interval` seconds on its own connection.
import { parentPort, workerData } from "node:worker_threads";
import pg from "pg";

/** @type {{ databaseUrl: string, statement: { name: string, text: string }, workerId: string, interval: number, grace: number }} */
const cfg = workerData;
/** @type {pg.Client | null} */
let client = null;
/** @type {NodeJS.Timeout | undefined} */
let timer;
let stopped = false;

async function connect() {
  const c = new pg.Client({ connectionString: cfg.databaseUrl, application_name: "skiplock heartbeat" });
  c.on("error", () => {});
  await c.connect();
  return c;
}

async function beat() {
  try {
    client ??= await connect();
    const r = await client.query({ name: cfg.statement.name, text: cfg.statement.text, values: [cfg.workerId, cfg.grace] });
    parentPort?.postMessage({ type: "beat", rows: r.rowCount ?? 0 });
  } catch (err) {
    const c = client;
    client = null;
    c?.end().catch(() => {});
    parentPort?.postMessage({ type: "error", message: err instanceof Error ? err.message : String(err) });
  }
  if (!stopped) timer = setTimeout(beat, cfg.interval * 1000);
}

parentPort?.on("message", async (/** @type {{ type: string }} */ msg) => {
  if (msg.type !== "stop") return;
  stopped = true;
  clearTimeout(timer);
  await client?.end().catch(() => {});
  parentPort?.postMessage({ type: "stopped" });
  parentPort?.close();
});

void beat();

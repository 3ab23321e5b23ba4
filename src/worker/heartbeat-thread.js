// @ts-check
// The heartbeat loop, on a thread of its own so that a handler keeping the main thread busy (CPU-bound work in
// inline mode) does not stop its own task's heartbeat. Plain JavaScript: it is loaded as is, from the sources or
// the build. The main thread tells it which tasks the worker holds: "add" when a claim lands (posted before any
// of those tasks starts, so even one that blocks the main thread at once is covered) and "set" on a timer with the
// whole current list (which is how finished tasks leave it). Every `interval` seconds it runs one statement, given
// by the main thread, on its own connection.
import { parentPort, workerData } from "node:worker_threads";
import pg from "pg";
import { retryMoved } from "../db/moved-rows.js";

/** @type {{ databaseUrl: string, statement: { name?: string, text: string }, seen?: { name?: string, text: string }, workerId: string, interval: number, grace: number }} */
const cfg = workerData;
/** @type {pg.Client | null} */
let client = null;
/** @type {NodeJS.Timeout | undefined} */
let timer;
let stopped = false;
/**
 * Every task the worker holds, as the comma-joined ids and attempts it was sent: the last whole list, then each
 * claim since. Kept as text and split by Postgres: splitting here made strings and map entries for every task
 * claimed, tens of thousands a second in a drain, and grew this thread's heap with them.
 */
let listIds = "";
let listAttempts = "";
/** @type {string[]} */
let addedIds = [];
/** @type {string[]} */
let addedAttempts = [];
/** The last list update received (numbered by the main thread), reported with each beat it is part of. */
let seq = 0;
let failing = false;
/** Tasks running on the worker, as of the last whole list. */
let running = 0;

/** @param {string} list @param {string[]} added */
function joined(list, added) {
  if (added.length === 0) return list;
  return list ? `${list},${added.join(",")}` : added.join(",");
}

async function connect() {
  const c = new pg.Client({
    connectionString: cfg.databaseUrl,
    // Named after its worker, as the worker's pool is: pg_stat_activity then shows which worker holds it.
    application_name: `skiplock heartbeat ${cfg.workerId}`,
    keepAlive: true,
    // A connection that stopped answering, or a connect that gets no answer (the registry's refresh connects even
    // while nothing is held), must not stop the beats for good.
    query_timeout: Math.max(5000, cfg.interval * 2000),
    connectionTimeoutMillis: Math.max(5000, cfg.interval * 2000),
  });
  c.on("error", () => {});
  await c.connect();
  return c;
}

/**
 * The beat, run again at once when it failed on a task that finished while it ran (retryMoved): the worker's own
 * completions commit all the while, so it is common here. The next run no longer sees the task among the live ones.
 * @param {pg.Client} c
 */
function runStatement(c) {
  return retryMoved(() =>
    c.query({
      ...cfg.statement,
      values: [cfg.workerId, joined(listIds, addedIds), joined(listAttempts, addedAttempts), cfg.grace],
    }),
  );
}

async function beat() {
  // Taken before the statement is sent: heartbeat_at is at least this late.
  const sentAt = Date.now();
  const covered = seq;
  if (!listIds && addedIds.length === 0) {
    // Nothing held, nothing to keep alive: a tick all the same, so the main thread sees no gap in the beats.
    parentPort?.postMessage({ type: "beat", rows: 0, sentAt, seq: covered });
  } else {
    try {
      client ??= await connect();
      const r = await runStatement(client);
      failing = false;
      const { beaten, cancel } = r.rows[0] ?? { beaten: 0, cancel: "" };
      parentPort?.postMessage({ type: "beat", rows: beaten, sentAt, seq: covered, cancel });
    } catch (err) {
      failing = true;
      const c = client;
      client = null;
      c?.end().catch(() => {});
      parentPort?.postMessage({ type: "error", message: err instanceof Error ? err.message : String(err) });
    }
  }
  await refreshSeen();
  // After a failure, try again soon: once Postgres answers, the beats it missed should land at once.
  if (!stopped) timer = setTimeout(beat, (failing ? Math.min(cfg.interval, 0.5) : cfg.interval) * 1000);
}

/**
 * The registry row's refresh. Its failure is not the beat's: the registry only informs the dashboard. Skipped while
 * the beat is failing, so a connection attempt of its own never holds up the beats' retries.
 */
async function refreshSeen() {
  if (!cfg.seen || stopped || failing) return;
  try {
    client ??= await connect();
    await client.query({ ...cfg.seen, values: [cfg.workerId, running] });
  } catch {
    const c = client;
    client = null;
    c?.end().catch(() => {});
  }
}

parentPort?.on(
  "message",
  async (/** @type {{ type: string, ids?: string, attempts?: string, seq?: number, running?: number }} */ msg) => {
    if (msg.seq !== undefined) seq = msg.seq;
    if (msg.running !== undefined) running = msg.running;
    if (msg.type === "set") {
      listIds = msg.ids ?? "";
      listAttempts = msg.attempts ?? "";
      addedIds = [];
      addedAttempts = [];
      return;
    }
    if (msg.type === "add") {
      if (!msg.ids) return;
      addedIds.push(msg.ids);
      addedAttempts.push(msg.attempts ?? "");
      return;
    }
    if (msg.type !== "stop") return;
    stopped = true;
    clearTimeout(timer);
    await client?.end().catch(() => {});
    parentPort?.postMessage({ type: "stopped" });
    parentPort?.close();
  },
);

timer = setTimeout(beat, cfg.interval * 1000);

// @ts-check
// The chaos run's tasks: a seeded mix of quick, short, slow, flaky and long tasks over two queues and several
// priorities, some delayed, some with no retries; and the enqueuer that writes them in batches through the
// library's createTasks, without ever enqueuing one twice when a batch meets a Postgres restart.
import { sleep } from "./servers.js";

/**
 * @typedef {object} Spec
 * @property {number} k the task's key: its number in this run, and its first argument
 * @property {"quick" | "nap" | "slow" | "flaky" | "long"} name
 * @property {number[]} args
 * @property {string} queue
 * @property {number} priority
 * @property {number | undefined} maxRetries undefined: the worker's --retry
 * @property {number | undefined} delay seconds
 */

export const QUEUES = ["default", "bulk"];

/**
 * A small seeded PRNG (mulberry32), so a run's mix is the same for the same seed.
 * @param {number} seed
 */
export function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The run's tasks, keys 0..total-1. The `long` ones come first and are delayed to `longDueIn` seconds, with the
 * highest priority, so they are running when the SIGTERM phase comes.
 * @param {object} o
 * @param {number} o.total
 * @param {number} o.longCount
 * @param {number} o.longDueIn seconds after the first batch
 * @param {number} o.seed
 * @returns {Spec[]}
 */
export function buildSpecs({ total, longCount, longDueIn, seed }) {
  const rnd = random(seed);
  const between = (/** @type {number} */ lo, /** @type {number} */ hi) => Math.round(lo + rnd() * (hi - lo));
  const pick = /** @template T @param {T[]} xs @returns {T} */ (xs) =>
    /** @type {T} */ (xs[Math.floor(rnd() * xs.length)]);
  /** @type {Spec[]} */
  const specs = [];
  for (let k = 0; k < total; k++) {
    if (k < longCount) {
      specs.push({
        k,
        name: "long",
        args: [k, between(5000, 8000)],
        queue: "default",
        priority: 50,
        maxRetries: undefined,
        delay: longDueIn,
      });
      continue;
    }
    const r = rnd();
    /** @type {Spec["name"]} */
    const name = r < 0.45 ? "quick" : r < 0.8 ? "nap" : r < 0.88 ? "slow" : "flaky";
    const args = name === "nap" ? [k, between(10, 200)] : name === "slow" ? [k, between(1000, 3000)] : [k];
    const noRetries = rnd() < (name === "flaky" ? 0.1 : 0.2);
    const delayed = rnd() < 0.1;
    specs.push({
      k,
      name,
      args,
      queue: rnd() < 0.3 ? "bulk" : "default",
      priority: pick([-5, 0, 0, 5, 10]),
      maxRetries: noRetries ? 0 : undefined,
      delay: delayed ? Math.round((1 + rnd() * 4) * 10) / 10 : undefined,
    });
  }
  return specs;
}

/**
 * The options createTasks takes for one spec.
 * @param {Spec} s
 * @returns {import("../../dist/src/index.js").TaskSpec}
 */
function taskSpec(s) {
  return {
    name: s.name,
    args: s.args,
    queue: s.queue,
    priority: s.priority,
    ...(s.maxRetries !== undefined ? { maxRetries: s.maxRetries } : {}),
    ...(s.delay !== undefined ? { delay: s.delay } : {}),
  };
}

/**
 * Enqueues one batch. When createTasks fails (Postgres restarting), its insert may or may not have committed: wait
 * for Postgres, look up which of the batch's keys have rows, and enqueue only the missing ones. Bounded attempts.
 * @param {object} o
 * @param {import("../../dist/src/index.js").SkiplockClient} o.client
 * @param {import("pg").Pool} o.admin
 * @param {string} o.schema
 * @param {Spec[]} o.batch
 * @param {(kind: string, detail: Record<string, unknown>) => void} o.event
 * @returns {Promise<number>} how many were enqueued
 */
export async function enqueueBatch({ client, admin, schema, batch, event }) {
  let todo = batch;
  for (let attempt = 1; attempt <= 20; attempt++) {
    try {
      await client.createTasks(todo.map(taskSpec));
      return batch.length;
    } catch (err) {
      event("enqueue-error", { attempt, size: todo.length, error: String(err) });
    }
    // Insert again only what has no row, and only once that is known: a lookup that fails is tried again.
    todo = await missing(admin, schema, todo);
    if (todo.length === 0) return batch.length;
  }
  throw new Error(`could not enqueue a batch of ${batch.length} after 20 attempts`);
}

/**
 * The specs of `specs` that have no row yet; waits (bounded) for Postgres to answer.
 * @param {import("pg").Pool} admin
 * @param {string} schema
 * @param {Spec[]} specs
 * @returns {Promise<Spec[]>}
 */
async function missing(admin, schema, specs) {
  for (let i = 0; i < 120; i++) {
    await sleep(500);
    try {
      const { rows } = await admin.query(
        `SELECT (args->>0)::int AS k FROM "${schema}".tasks WHERE (args->>0)::int = ANY($1::int[])`,
        [specs.map((s) => s.k)],
      );
      const present = new Set(rows.map((r) => r.k));
      return specs.filter((s) => !present.has(s.k));
    } catch {
      // Postgres still restarting
    }
  }
  throw new Error("Postgres did not answer for 60 s while checking which tasks of a batch were written");
}

// Scale-out across hosts: a database host (Postgres, Redis) and two worker hosts with two `run-worker` processes
// each, every host a network namespace of its own, reaching the database host only over its link
// (bench/scale/lab.js draws the network). The workers drain 10,000 tasks, each exactly once; then one worker host's
// link is cut for longer than --stale-after and restored; then Redis is cut off and restored.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { netnsUnavailable } from "../bench/scale/lab.js";
import { waitFor } from "./helpers.js";
import { NetnsCluster, type HostWorker } from "./netns-cluster.js";
import { missingTools, underCi } from "./system-tools.js";

/** Why this machine cannot build the hosts; under CI it must, so a reason fails the file instead. */
function skipReason(): string | null {
  const missing = missingTools("ip", "redis-server");
  if (missing) return missing;
  const reason = netnsUnavailable();
  if (reason && underCi) throw new Error(`CI cannot build network namespaces: ${reason}`);
  if (reason) console.warn(`skipped: ${reason}`);
  return reason;
}

const FLAGS = { concurrency: 8, heartbeatInterval: 0.5, staleAfter: 3, pollInterval: 0.5 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Events of `w` named one of `names`, sent after index `from` of its event list. */
function eventsSince(w: HostWorker, from: number, ...names: string[]) {
  return w.proc.events.slice(from).filter((e) => names.includes(e.event));
}

describe.skipIf(skipReason())("several hosts over network namespaces", () => {
  // Made in beforeAll: a skipped file builds nothing.
  let cluster: NetnsCluster;

  beforeAll(async () => {
    cluster = new NetnsCluster(2);
    await cluster.start();
    await cluster.startWorkers(2, FLAGS);
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  }, 60_000);

  it("four workers on two hosts drain 10,000 tasks, each run exactly once", async () => {
    const ids = await cluster.enqueue("recorded", 10_000, (i) => [i]);
    await waitFor(
      "10,000 tasks completed",
      async () => (await cluster.statuses(ids)).COMPLETED === 10_000,
      120_000,
      250,
    );
    const runs = await cluster.executions(ids);
    expect(runs.size).toBe(10_000);
    expect([...runs.values()].filter((n) => n !== 1)).toEqual([]);
    // Both hosts did work: the ledger's pids belong to workers of each.
    const { rows } = await cluster.pool.query(
      `SELECT DISTINCT pid FROM "${cluster.schema}".ledger WHERE task_id = ANY($1::bigint[])`,
      [ids],
    );
    const pids = new Set(rows.map((r) => r.pid as number));
    for (const host of [1, 2]) expect(cluster.onHost(host).some((w) => pids.has(w.proc.child.pid!))).toBe(true);
  }, 150_000);

  it("a worker host cut off for longer than --stale-after: its tasks run elsewhere, its late outcomes change nothing", async () => {
    const cutHosts = cluster.onHost(1);
    const others = cluster.onHost(2);
    const marks = new Map(cluster.workers.map((w) => [w, w.proc.events.length]));
    const ids = await cluster.enqueue("sleep", 4000, () => [40]);
    await waitFor("a quarter of the tasks started", async () => (await cluster.ledgerCount(ids)) >= 1000, 60_000, 50);

    const cutAt = Date.now();
    cluster.lab.cutHost(1);
    // Statements that reached Postgres just before the cut commit within milliseconds; then the rows show what the
    // cut host held: its running, finished-but-unreported and prefetched tasks. Only these may run twice.
    await sleep(500);
    const { rows: held } = await cluster.pool.query(
      `SELECT id::text AS id FROM "${cluster.schema}".tasks
        WHERE id = ANY($1::bigint[]) AND status = 'PROGRESS' AND worker_id = ANY($2::text[])`,
      [ids, cutHosts.map((w) => w.id)],
    );
    const inFlight = new Set(held.map((r) => r.id as string));
    expect(inFlight.size).toBeGreaterThan(0);

    // A worker of the other host sweeps the cut host's tasks once their heartbeats are --stale-after old.
    const cutIds = new Set(cutHosts.map((w) => w.id));
    await waitFor(
      "a sweep of the cut host's tasks",
      () =>
        others.some((w) =>
          eventsSince(w, marks.get(w)!, "swept").some((e) => e.data.workers.some((id: string) => cutIds.has(id))),
        ),
      30_000,
      100,
    );
    await sleep(Math.max(0, cutAt + 2.5 * FLAGS.staleAfter * 1000 - Date.now()));
    cluster.lab.restoreHost(1);

    await waitFor("4,000 tasks completed", async () => (await cluster.statuses(ids)).COMPLETED === 4000, 120_000, 250);
    // Back on the link, the cut host's workers report what they finished meanwhile: compare-and-set on the lease
    // finds it gone, and the outcome is discarded.
    const discarded = () => cutHosts.flatMap((w) => eventsSince(w, marks.get(w)!, "outcome:discarded"));
    await waitFor("the cut host's late outcomes to be discarded", () => discarded().length > 0, 30_000, 100);
    const { rows: finals } = await cluster.pool.query(
      `SELECT id::text AS id, attempt, status FROM "${cluster.schema}".tasks WHERE id = ANY($1::bigint[])`,
      [ids],
    );
    const final = new Map(finals.map((r) => [r.id as string, r]));
    for (const { data } of discarded()) {
      expect(inFlight.has(data.id)).toBe(true);
      expect(final.get(data.id)!.attempt).toBeGreaterThan(data.attempt);
    }
    expect([...final.values()].filter((r) => r.status !== "COMPLETED")).toEqual([]);

    // Nothing lost; a task ran twice only if the cut host held it.
    const runs = await cluster.executions(ids);
    expect(runs.size).toBe(4000);
    const twice = [...runs].filter(([, n]) => n > 1).map(([id]) => id);
    expect(twice.filter((id) => !inFlight.has(id))).toEqual([]);
    expect(twice.length).toBeLessThanOrEqual(inFlight.size);
    console.info(
      `cut host held ${inFlight.size} task(s) at the cut; ${twice.length} ran twice; ` +
        `${discarded().length} late outcome(s) discarded`,
    );
  }, 180_000);

  it("Redis cut off: work goes on by polling, and every worker's doorbell reports down, then up", async () => {
    const marks = new Map(cluster.workers.map((w) => [w, w.proc.events.length]));
    const cutAt = Date.now();
    cluster.lab.cutRedis();
    const ids = await cluster.enqueue("recorded", 1000, (i) => [i]);
    await waitFor(
      "1,000 tasks completed without Redis",
      async () => (await cluster.statuses(ids)).COMPLETED === 1000,
      60_000,
      250,
    );

    // A silent link raises no error: a worker finds it by its liveness pings (every 5 s, silent after two), then
    // its reconnection attempts fail. So the cut lasts until every worker has noticed, and at least 10 s.
    const noticed = (w: HostWorker) => eventsSince(w, marks.get(w)!, "redis:down", "redis:silent").length > 0;
    await waitFor("every worker to notice Redis is gone", () => cluster.workers.every(noticed), 60_000, 100);
    await sleep(Math.max(0, cutAt + 10_000 - Date.now()));
    cluster.lab.restoreRedis();

    const up = (w: HostWorker) => eventsSince(w, marks.get(w)!, "redis:up").length > 0;
    await waitFor("every worker's doorbell up again", () => cluster.workers.every(up), 60_000, 100);
    const runs = await cluster.executions(ids);
    expect(runs.size).toBe(1000);
    expect([...runs.values()].filter((n) => n !== 1)).toEqual([]);

    // And after it: more work drains.
    const after = await cluster.enqueue("recorded", 500, (i) => [i]);
    await waitFor(
      "500 more tasks completed",
      async () => (await cluster.statuses(after)).COMPLETED === 500,
      60_000,
      250,
    );
  }, 180_000);
});

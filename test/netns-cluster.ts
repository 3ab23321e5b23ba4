// A cluster of several hosts for test/netns.test.ts: the lab's namespaces (bench/scale/lab.js), a migrated schema with
// a ledger on its Postgres, and `skiplock run-worker` processes inside the worker hosts, whose events come back over
// their IPC channels (`ip netns exec` execs the worker in place, so the channel is the worker's own).
import pg from "pg";
import { NetnsLab } from "../bench/scale/lab.js";
import { SkiplockClient } from "../src/index.js";
import {
  CLI,
  FIXTURE_TASKS,
  migratedWithLedger,
  quiet,
  spawnProc,
  stopProc,
  uniqueName,
  type Proc,
} from "./helpers.js";

export interface HostWorker {
  /** 1-based worker host number. */
  host: number;
  proc: Proc;
  /** The worker's id (worker:started), as rows' worker_id holds it. */
  id: string;
}

export interface WorkerFlags {
  concurrency: number;
  heartbeatInterval: number;
  staleAfter: number;
  pollInterval: number;
}

export class NetnsCluster {
  readonly lab: NetnsLab;
  readonly schema = uniqueName("netns");
  readonly workers: HostWorker[] = [];
  pool!: pg.Pool;
  client!: SkiplockClient;

  constructor(workerHosts: number) {
    this.lab = new NetnsLab(workerHosts);
  }

  /** Builds the hosts, starts the servers, migrates the schema and adds the ledger. */
  async start(): Promise<void> {
    this.lab.build();
    await this.lab.startServers();
    this.pool = await migratedWithLedger(this.lab.localDatabaseUrl, this.schema);
    // No Redis for the test's own client: Redis lives behind the lab's links. Workers poll for new work.
    this.client = new SkiplockClient({ databaseUrl: this.lab.localDatabaseUrl, schema: this.schema, logger: quiet });
  }

  /** Starts `perHost` workers on every worker host; resolves once each reported worker:started with Redis up. */
  async startWorkers(perHost: number, flags: WorkerFlags): Promise<void> {
    const args = [
      ...["--tasks", FIXTURE_TASKS, "--concurrency", String(flags.concurrency), "--retry", "5"],
      ...["--heartbeat-interval", String(flags.heartbeatInterval), "--stale-after", String(flags.staleAfter)],
      ...["--poll-interval", String(flags.pollInterval), "--shutdown-timeout", "2", "--log-level", "warn"],
    ];
    const env = { DATABASE_URL: this.lab.databaseUrl, REDIS_URL: this.lab.redisUrl, SKIPLOCK_SCHEMA: this.schema };
    const starting = this.lab.hosts.flatMap((ns, i) =>
      Array.from({ length: perHost }, async () => {
        const proc = spawnProc("ip", ["netns", "exec", ns, process.execPath, CLI, "run-worker", ...args], env);
        const started = await proc.waitForEvent("worker:started", undefined, 30_000);
        if (started.data.redis !== "connected") throw new Error(`worker on host ${i + 1}: Redis ${started.data.redis}`);
        return { host: i + 1, proc, id: started.data.workerId as string };
      }),
    );
    this.workers.push(...(await Promise.all(starting)));
  }

  onHost(host: number): HostWorker[] {
    return this.workers.filter((w) => w.host === host);
  }

  /** Enqueues `count` tasks named `name` with args from `args(i)`, in batches of 1,000; returns their ids. */
  async enqueue(name: string, count: number, args: (i: number) => unknown[]): Promise<string[]> {
    const ids: string[] = [];
    for (let from = 0; from < count; from += 1000) {
      const specs = Array.from({ length: Math.min(1000, count - from) }, (_, j) => ({ name, args: args(from + j) }));
      ids.push(...(await this.client.createTasks(specs)).map((t) => t.id));
    }
    return ids;
  }

  /** How many of `ids` are in each status. */
  async statuses(ids: readonly string[]): Promise<Record<string, number>> {
    const { rows } = await this.pool.query(
      `SELECT status, count(*)::int AS n FROM "${this.schema}".tasks WHERE id = ANY($1::bigint[]) GROUP BY status`,
      [ids],
    );
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  /** Executions per task of `ids` as the ledger has them (tasks that never ran are absent). */
  async executions(ids: readonly string[]): Promise<Map<string, number>> {
    const { rows } = await this.pool.query(
      `SELECT task_id::text AS id, count(*)::int AS n FROM "${this.schema}".ledger
        WHERE task_id = ANY($1::bigint[]) GROUP BY task_id`,
      [ids],
    );
    return new Map(rows.map((r) => [r.id as string, r.n as number]));
  }

  /** Ledger rows of `ids` so far. */
  async ledgerCount(ids: readonly string[]): Promise<number> {
    const { rows } = await this.pool.query(
      `SELECT count(*)::int AS n FROM "${this.schema}".ledger WHERE task_id = ANY($1::bigint[])`,
      [ids],
    );
    return rows[0].n as number;
  }

  /** Stops the workers (SIGKILL: some may sit behind a cut link), the client and pool, then the lab. */
  async destroy(): Promise<void> {
    await Promise.all(this.workers.map((w) => stopProc(w.proc, "SIGKILL")));
    await this.client?.close().catch(() => {});
    await this.pool?.end().catch(() => {});
    await this.lab.destroy();
  }
}

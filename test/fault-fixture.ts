// The setup every fault-injection file shares: its place and client (see schema-fixture.ts) and its worker
// processes, all killed after each test so that no test leaves a worker running behind it.
import { afterAll, afterEach } from "vitest";
import { type Proc, WorkerProcs } from "./helpers.js";
import { schemaFixture, type SchemaFixture, type SchemaFixtureOptions } from "./schema-fixture.js";

export interface FaultFixtureOptions extends SchemaFixtureOptions {
  /** Flags every worker process of the file starts with, before a test's own. */
  workerFlags?: readonly string[];
  /** Worker environment over the file's DATABASE_URL and REDIS_URL, read as each worker starts. */
  workerEnv?: () => Record<string, string | undefined>;
  /** Rows in these states are set CANCELLED after each test, once its workers are dead: the next test sees none. */
  cancelAfterEach?: readonly ("PENDING" | "PROGRESS")[];
}

export interface FaultFixture extends SchemaFixture {
  readonly workers: WorkerProcs;
  /** A `skiplock run-worker` with the file's flags, then `args`; `env` over its environment. Killed after the test. */
  worker: (args?: string[], env?: Record<string, string | undefined>) => Promise<Proc>;
}

/** Registers the file's hooks (schemaFixture's, and the workers' cleanup after each test) and returns its fixture. */
export function faultFixture(options: FaultFixtureOptions): FaultFixture {
  const place = schemaFixture(options);
  const workers = new WorkerProcs(
    () => place.schema,
    [...(options.workerFlags ?? [])],
    () => ({ DATABASE_URL: place.databaseUrl, REDIS_URL: place.redisUrl, ...options.workerEnv?.() }),
  );
  const cancel = options.cancelAfterEach ?? [];
  afterEach(async () => {
    await workers.killAll();
    if (cancel.length === 0) return;
    await place.pool.query(`UPDATE "${place.schema}".tasks SET status = 'CANCELLED' WHERE status = ANY($1::text[])`, [
      cancel,
    ]);
  });
  afterAll(() => workers.killAll());
  const worker: FaultFixture["worker"] = (args, env) => workers.start(args, env);
  return Object.assign(place, { workers, worker });
}

// The setup files that test in-process Workers share: their place and client (see schema-fixture.ts), Workers made
// with the file's defaults and stopped after each test, and a wait for a task to finish.
import { afterEach } from "vitest";
import { Worker, type Task, type WorkerOptions } from "../src/index.js";
import { quiet } from "./helpers.js";
import { schemaFixture, type SchemaFixture, type SchemaFixtureOptions } from "./schema-fixture.js";

export interface WorkerFixtureOptions extends SchemaFixtureOptions {
  /** Options every Worker of the file gets, under a test's own. */
  workerDefaults?: Partial<WorkerOptions>;
  /** Deletes every task after each test, once its Workers stopped: the next test starts with an empty table. */
  deleteTasksAfterEach?: boolean;
  /** Seconds `finished` waits unless told otherwise; default 20. */
  finishTimeout?: number;
}

export interface WorkerFixture extends SchemaFixture {
  /** Starts a quiet Worker on the file's schema (the file's defaults, then `options`), stopped after the test. */
  startWorker: (options: Partial<WorkerOptions>) => Promise<Worker>;
  /** Stops every Worker started so far. */
  stopWorkers: () => Promise<void>;
  /** The task once it finished; throws when it has not within `timeout` seconds. */
  finished: (task: { id: string; name?: string }, timeout?: number) => Promise<Task>;
}

/** Registers the file's hooks (schemaFixture's, and stopping its Workers after each test) and returns its fixture. */
export function workerFixture(options: WorkerFixtureOptions): WorkerFixture {
  const place = schemaFixture(options);
  const workers: Worker[] = [];
  const startWorker = async (own: Partial<WorkerOptions>): Promise<Worker> => {
    const w = new Worker({
      databaseUrl: place.databaseUrl,
      redisUrl: place.redisUrl,
      schema: place.schema,
      logger: quiet,
      ...options.workerDefaults,
      ...own,
    });
    workers.push(w);
    await w.start();
    return w;
  };
  const stopWorkers = async (): Promise<void> => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  };
  const finished = async (task: { id: string; name?: string }, timeout = options.finishTimeout ?? 20) => {
    const done = await place.client.waitForCompletion(task.id, { timeout });
    if (!done) throw new Error(`task ${task.id}${task.name ? ` (${task.name})` : ""} did not finish in ${timeout} s`);
    return done;
  };
  afterEach(async () => {
    await stopWorkers();
    if (options.deleteTasksAfterEach) await place.pool.query(`DELETE FROM "${place.schema}".tasks`);
  });
  return Object.assign(place, { startWorker, stopWorkers, finished });
}

// What each test file uses: a client on a fresh in-memory database of the file's own, migrated before its tests.
// The database lives while a client holds it: the worker and every client in the file share it (and its doorbell).
import { afterAll, beforeAll } from "vitest";
import { SkiplockClient, Worker } from "skiplock";

export const DATABASE_URL = "pglite:memory";

export function useSkiplock() {
  const client = new SkiplockClient({ databaseUrl: DATABASE_URL, logger: quietLogger });
  beforeAll(() => client.migrate());
  afterAll(() => client.close());
  return {
    client,
    /**
     * A worker for `tasks`; stop it at the end of the test (or use runUntilIdle).
     * @param {import("skiplock").WorkerOptions["tasks"]} tasks
     * @param {Partial<import("skiplock").WorkerOptions>} [options]
     */
    worker: (tasks, options = {}) => new Worker({ databaseUrl: DATABASE_URL, tasks, logger: quietLogger, ...options }),
  };
}

const quiet = () => {};
const quietLogger = { debug: quiet, info: quiet, warn: quiet, error: quiet };

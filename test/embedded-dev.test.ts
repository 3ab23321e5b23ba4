// `skiplock dev`: the embedded database, a worker and the dashboard in one process. Its interface is what it prints
// (the dashboard's URL) and the dashboard it serves; code loaded in its process enqueues through its client.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, spawnProc, stopProc, waitFor } from "./helpers.js";

const DIST_INDEX = new URL("../dist/src/index.js", import.meta.url).href;

describe("skiplock dev", () => {
  const dir = mkdtempSync(join(tmpdir(), "skiplock-dev-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("serves the dashboard on loopback, runs the tasks a module in its process enqueues, and stops on SIGINT", async () => {
    const tasks = join(dir, "tasks.js");
    // A producer in the same process: the module-level createTask goes to the command's own client.
    writeFileSync(
      tasks,
      `import { createTask } from ${JSON.stringify(DIST_INDEX)};
       export const hello = (name) => "hello, " + name;
       setTimeout(() => void createTask("hello", ["dev"]), 0);`,
    );
    const env = { DATABASE_URL: undefined, REDIS_URL: "redis://127.0.0.1:9" };
    const p = spawnProc(process.execPath, [CLI, "dev", "--tasks", tasks, "--db", join(dir, "db"), "--port", "0"], env);
    try {
      await p.waitForOutput(/dashboard at (http:\/\/127\.0\.0\.1:\d+\/)/, 90_000);
      const url = /dashboard at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(p.output())![1]!;
      const stats = await waitFor("the enqueued task to complete", async () => {
        const r = await fetch(new URL("api/stats", url));
        expect(r.status).toBe(200);
        const body = (await r.json()) as { counts: { totals: Record<string, number> }; liveWorkers: number };
        return body.counts.totals.COMPLETED === 1 ? body : null;
      });
      expect(stats!.liveWorkers).toBe(1);
      p.child.kill("SIGINT");
      expect(await p.exited).toEqual({ code: 0, signal: null });
    } finally {
      await stopProc(p, "SIGKILL");
    }
  }, 120_000);
});

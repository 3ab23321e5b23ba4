import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { InvalidOptionError, Worker } from "../src/index.js";
import { DATABASE_URL, quiet } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";

const MODULE = fileURLToPath(new URL("./fixtures/isolated.js", import.meta.url));
const env = workerFixture({ label: "isolation", workerDefaults: { tasksModule: MODULE } });
const { startWorker, finished } = env;

describe("thread isolation", () => {
  it("terminates a task that never yields at its timeout, frees the slot and keeps serving", async () => {
    await startWorker({ isolation: "thread", concurrency: 1 });
    const loop = await env.client.createTask("loopForever", [], { timeout: 0.5 });
    const next = await env.client.createTask("echo", [7]);
    const failed = await finished(loop);
    expect(failed.status).toBe("FAILED");
    expect(failed.error).toMatch(/TaskTimeoutError: task timed out after 0.5 s \(its thread was terminated\)/);
    expect(await finished(next)).toMatchObject({ status: "COMPLETED", result: { x: 7, attempt: 1 } });
  });

  it("fails the attempt when the handler exits its thread, and when the result cannot be carried", async () => {
    await startWorker({ isolation: "thread", concurrency: 2 });
    const [exit, fn, ok] = await env.client.createTasks([
      { name: "exitThread" },
      { name: "returnsFunction" },
      { name: "echo", args: [1] },
    ]);
    expect((await finished(exit!)).error).toMatch(/task thread exited with code 3/);
    expect((await finished(fn!)).error).toMatch(/handler returned a value JSON cannot carry/);
    expect((await finished(ok!)).status).toBe("COMPLETED");
  });

  it("honours a task's own isolation on an inline worker", async () => {
    await startWorker({ concurrency: 1 });
    const looped = await env.client.createTask("isolated.alwaysThreaded", [], { timeout: 0.3 });
    const next = await env.client.createTask("echo", [2]);
    expect((await finished(looped)).error).toMatch(/its thread was terminated/);
    expect((await finished(next)).status).toBe("COMPLETED");
  });

  it("needs a tasks module", () => {
    const w = new Worker({
      databaseUrl: DATABASE_URL,
      schema: env.schema,
      isolation: "thread",
      tasks: { a: () => 1 },
      logger: quiet,
    });
    return expect(w.start()).rejects.toBeInstanceOf(InvalidOptionError);
  });
});

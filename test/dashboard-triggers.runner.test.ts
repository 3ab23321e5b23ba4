// The one-shot runner behind the dashboard's trigger endpoints, used directly: its settings' checks, and a call's
// events and results.
import { afterEach, describe, expect, it } from "vitest";
import { InvalidOptionError } from "../src/index.js";
import { createTaskRunner, type TaskRunner } from "../src/runner/run-due.js";
import type { WorkerEventName } from "../src/worker/events.js";
import { quiet } from "./helpers.js";
import { schemaFixture } from "./schema-fixture.js";

const env = schemaFixture({ label: "trigger_runner" });

const runners: TaskRunner[] = [];
afterEach(async () => {
  await Promise.all(runners.splice(0).map((r) => r.close()));
  await env.pool.query(`DELETE FROM "${env.schema}".tasks`);
});

describe("createTaskRunner", () => {
  it("checks its handlers and settings where they are given, naming the wrong one", () => {
    const make = (o: object) => () => createTaskRunner({ client: env.client, logger: quiet, ...o });
    expect(make({})).toThrow(InvalidOptionError);
    expect(make({ tasks: { "bad name!": () => 1 } })).toThrow(/invalid task name/i);
    expect(make({ tasks: { ok: 42 } })).toThrow(/neither a function nor a task made with defineTask/);
    expect(make({ tasks: { ok: () => 1 }, settings: { staleAfter: 1, heartbeatInterval: 1 } })).toThrow(
      /staleAfter.*twice heartbeatInterval/,
    );
    expect(make({ tasks: { ok: () => 1 }, settings: { maxRetries: -1 } })).toThrow(/maxRetries/);
    expect(make({ tasks: { ok: () => 1 }, settings: { stale: 3 } })).toThrow(/stale/);
  });

  it("runs due tasks under one lease per call, emitting a worker's events", async () => {
    const heard: string[] = [];
    const runner = createTaskRunner({
      client: env.client,
      logger: quiet,
      tasks: { double: (n: number) => n * 2 },
      settings: { heartbeatInterval: 0.2, staleAfter: 1 },
      signal: (name, ...args) => heard.push(`${name} ${(args[0] as { task: { id: string } }).task.id}`),
      listening: (name: WorkerEventName) => name === "task:started" || name === "task:completed",
    });
    runners.push(runner);
    const [a, b] = await env.client.createTasks([
      { name: "double", args: [1] },
      { name: "double", args: [2] },
    ]);
    const r = await runner.runDue({ max: 5, concurrency: 2 });
    expect(r.stoppedBy).toBe("idle");
    expect(r.tasks.map((t) => [t.id, t.outcome]).sort()).toEqual(
      [
        [a!.id, "completed"],
        [b!.id, "completed"],
      ].sort(),
    );
    expect(heard.sort()).toEqual(
      [`task:started ${a!.id}`, `task:started ${b!.id}`, `task:completed ${a!.id}`, `task:completed ${b!.id}`].sort(),
    );
    expect((await env.client.getTask(b!.id))?.result).toBe(4);
    expect(await runner.defaultQueues()).toEqual(["default"]);
  });
});

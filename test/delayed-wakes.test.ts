// A worker with a long poll interval relies on Redis wake-ups with a due time to start delayed tasks. A wake-up
// whose claim reaches Postgres before the database calls the task due finds nothing, and without a second look the
// task waits for the next poll: here 30 s, far past each wait below (no test here checks speed).
import { describe, expect, it } from "vitest";
import { RedisNotifier } from "../src/notify/redis.js";
import { insertTasks } from "../src/sql/insert.js";
import { prepareTask } from "../src/task.js";
import { WakeTimer } from "../src/worker/wake-timer.js";
import { quiet, waitFor } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";

const env = workerFixture({ label: "delayed_wakes", deleteTasksAfterEach: true });

describe("WakeTimer", () => {
  it("never wakes before a due time has passed, even one a few milliseconds after another", async () => {
    const woke: number[] = [];
    const timer = new WakeTimer(() => woke.push(Date.now()));
    try {
      const base = Date.now() + 50;
      const dues = [0, 1, 3, 4].map((d) => base + d);
      for (const at of dues) timer.add(at);
      // Every due time gets a wake-up after it has passed (times that passed together may share one).
      await waitFor("a wake-up after the last due time", () => woke.some((w) => w > dues[3]!), 2000, 5);
      for (const at of dues) expect(woke.some((w) => w > at)).toBe(true);
    } finally {
      timer.clear();
    }
  });
});

describe("delayed tasks announced by Redis", () => {
  it("start at their due time, not at the next poll, when due times fall a few milliseconds apart", async () => {
    await env.startWorker({ tasks: { noop: () => "ran" }, pollInterval: 30, concurrency: 4 });
    // Waves of ten tasks due 1-2 ms apart: each wake-up is armed for one task's due time, often a hair before the
    // next one's.
    for (let wave = 0; wave < 5; wave++) {
      const tasks = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          env.client.createTask("noop", [], { delay: 0.3 + i * 0.0015 + wave * 0.0007 }),
        ),
      );
      const done = await Promise.all(tasks.map((t) => env.finished(t, 5)));
      expect(done.map((t) => t.status)).toEqual(tasks.map(() => "COMPLETED"));
    }
  });

  it("start on time when the worker's clock runs ahead of the database's", async () => {
    await env.startWorker({ tasks: { noop: () => "ran" }, pollInterval: 30 });
    // The wake-up names a due time `ahead` ms before the row's run_at, as from a host whose clock is ahead by that.
    const notifier = new RedisNotifier({ url: env.redisUrl, schema: env.schema, logger: quiet });
    await notifier.start();
    try {
      for (const ahead of [1, 2, 3, 5, 8, 12, 20, 30, 50, 80, 120, 200]) {
        const [task] = await insertTasks(env.pool, `"${env.schema}".tasks`, [
          prepareTask({ name: "noop", args: [], delay: 0.2 }),
        ]);
        notifier.publishWake("default", 1, task!.runAt.getTime() - ahead);
        expect((await env.finished(task!, 5)).status).toBe("COMPLETED");
      }
    } finally {
      await notifier.stop();
    }
  });
});

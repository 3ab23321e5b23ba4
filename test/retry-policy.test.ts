import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { InvalidOptionError, PermanentError, Worker, defineTask, taskContext, type Task } from "../src/index.js";
import { MAX_STORED_ERRORS, STORED_MESSAGE_CHARS, STORED_STACK_CHARS } from "../src/sql/errors-column.js";
import { CRASHED_WORKER, DATABASE_URL, insertCrashedTasks, taskRows } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";
import { nextEvent } from "./worker-events.js";

const POLICY_MODULE = fileURLToPath(new URL("./fixtures/policy.js", import.meta.url));

class NotFound extends Error {
  override name = "NotFound";
}

const env = workerFixture({
  label: "retry_policy",
  // Tasks without a policy of their own wait long enough that a test sees them PENDING.
  workerDefaults: { retryBackoff: { base: 1000, max: 1000 } },
  deleteTasksAfterEach: true,
});
const { startWorker, finished } = env;

/** Seconds between a retried task's last failure and its run_at. */
async function retryDelayOf(id: string): Promise<number> {
  const row = (await taskRows(env.pool, env.schema, [id])).get(id)!;
  expect(row.status).toBe("PENDING");
  return (row.run_at.getTime() - row.updated_at.getTime()) / 1000;
}

describe("retryOn", () => {
  it("fails a task for good at once when retryOn returns false, and retries it otherwise", async () => {
    const seen: unknown[] = [];
    const picky = defineTask(
      "picky",
      (kind: string) => {
        if (kind === "notfound") throw new NotFound("no such record");
        throw new Error("try again");
      },
      {
        backoff: () => 0,
        retryOn: (error) => {
          seen.push(error);
          return !(error instanceof NotFound);
        },
      },
    );
    await startWorker({ tasks: [picky] });
    const gone = await finished(await env.client.createTask("picky", ["notfound"], { maxRetries: 5 }));
    expect(gone).toMatchObject({ status: "FAILED", attempt: 1, retryCount: 0 });
    expect(gone.errors).toHaveLength(1);
    expect(gone.errors[0]).toMatchObject({ type: "NotFound", message: "no such record", attempt: 1 });
    expect(seen[0]).toBeInstanceOf(NotFound);

    const flaky = await finished(await env.client.createTask("picky", ["flaky"], { maxRetries: 2 }));
    expect(flaky).toMatchObject({ status: "FAILED", attempt: 3, retryCount: 2 });
    expect(flaky.errors.map((e) => e.attempt)).toEqual([1, 2, 3]);
  });

  it("fails a task for good when its handler throws PermanentError, keeping the cause in the error text", async () => {
    const strict = defineTask("strict", () => {
      throw new PermanentError("bad input", { cause: new TypeError("the root cause") });
    });
    await startWorker({ tasks: [strict], maxRetries: 3 });
    const done = await finished(await env.client.createTask("strict"));
    expect(done).toMatchObject({ status: "FAILED", attempt: 1, retryCount: 0, maxRetries: 3 });
    expect(done.error).toMatch(/^PermanentError: bad input/);
    expect(done.error).toContain("Caused by: TypeError: the root cause");
    expect(done.errors).toEqual([
      expect.objectContaining({
        type: "PermanentError",
        message: "bad input",
        attempt: 1,
        workerId: expect.any(String),
      }),
    ]);
    expect(new PermanentError("x").code).toBe("PERMANENT");
  });

  it("treats a retryOn that throws as retry-worthy and reports it as worker:error", async () => {
    const broken = defineTask(
      "broken",
      () => {
        if (taskContext().attempt === 1) throw new Error("first attempt fails");
        return "ok";
      },
      {
        backoff: () => 0,
        retryOn: () => {
          throw new Error("retryOn broke");
        },
      },
    );
    const worker = await startWorker({ tasks: [broken] });
    const reported = nextEvent(worker, "worker:error");
    const done = await finished(await env.client.createTask("broken", [], { maxRetries: 1 }));
    expect(done).toMatchObject({ status: "COMPLETED", attempt: 2 });
    const [{ error, during }] = await reported;
    expect(error.message).toBe("retryOn broke");
    expect(during).toMatch(/retryOn of task broken/);
  });

  it("is judged in the task thread under thread isolation, where the error keeps its class", async () => {
    const worker = await startWorker({ tasksModule: POLICY_MODULE, isolation: "thread" });
    const gone = await finished(await env.client.createTask("policy.picky", ["notfound"], { maxRetries: 5 }));
    expect(gone).toMatchObject({ status: "FAILED", attempt: 1 });
    expect(gone.errors[0]).toMatchObject({ type: "NotFound", message: "no such record" });
    const flaky = await finished(await env.client.createTask("policy.picky", ["flaky"], { maxRetries: 1 }));
    expect(flaky).toMatchObject({ status: "FAILED", attempt: 2 });

    const permanent = await finished(await env.client.createTask("policy.permanent", [], { maxRetries: 5 }));
    expect(permanent).toMatchObject({ status: "FAILED", attempt: 1 });
    expect(permanent.errors[0]).toMatchObject({ type: "PermanentError", message: "bad input" });

    const reported = nextEvent(worker, "worker:error");
    const broken = await finished(await env.client.createTask("policy.brokenRetryOn", [], { maxRetries: 1 }));
    expect(broken).toMatchObject({ status: "FAILED", attempt: 2 });
    expect((await reported)[0].error.message).toMatch(/retryOn broke/);
  });

  it("lets retryOn judge a timed-out attempt too", async () => {
    const slow = defineTask("slow", () => new Promise(() => {}), {
      backoff: () => 0,
      retryOn: (e) => (e as Error).name !== "TaskTimeoutError",
    });
    await startWorker({ tasks: [slow] });
    const done = await finished(await env.client.createTask("slow", [], { timeout: 0.05, maxRetries: 3 }));
    expect(done).toMatchObject({ status: "FAILED", attempt: 1 });
    expect(done.errors[0]).toMatchObject({ type: "TaskTimeoutError" });
  });
});

describe("backoff", () => {
  it("waits the seconds a backoff function gives for the attempt that failed", async () => {
    const attempts: number[] = [];
    const paced = defineTask(
      "paced",
      () => {
        throw new Error("fails");
      },
      {
        backoff: (attempt) => {
          attempts.push(attempt);
          return attempt < 3 ? 0 : 7200;
        },
      },
    );
    const worker = await startWorker({ tasks: [paced] });
    const retrying = nextEvent(worker, "task:retrying", ({ task }) => task.attempt === 3);
    const task = await env.client.createTask("paced", [], { maxRetries: 5 });
    const [{ runAt }] = await retrying;
    expect(attempts).toEqual([1, 2, 3]);
    const delay = await retryDelayOf(task.id);
    expect(delay).toBeGreaterThan(7199);
    expect(delay).toBeLessThan(7201);
    expect(runAt.getTime()).toBe((await env.client.getTask(task.id))!.runAt.getTime());
  });

  it("grows { base, max } exponentially with jitter, as the worker's default does", async () => {
    let fails = 0;
    const expo = defineTask(
      "expo",
      () => {
        fails++;
        throw new Error("fails");
      },
      { backoff: { base: 100, max: 150 } },
    );
    const worker = await startWorker({ tasks: [expo] });
    const first = nextEvent(worker, "task:retrying");
    const task = await env.client.createTask("expo", [], { maxRetries: 5 });
    await first;
    const delay = await retryDelayOf(task.id);
    expect(delay).toBeGreaterThanOrEqual(50 - 0.01);
    expect(delay).toBeLessThan(100 + 0.01);
    expect(fails).toBe(1);
  });

  it("leaves tasks without a policy to the worker's retryBackoff", async () => {
    const worker = await startWorker({ tasks: { plain: () => Promise.reject(new Error("fails")) } });
    const retrying = nextEvent(worker, "task:retrying");
    const task = await env.client.createTask("plain", [], { maxRetries: 1 });
    await retrying;
    const delay = await retryDelayOf(task.id);
    expect(delay).toBeGreaterThanOrEqual(500 - 0.01);
    expect(delay).toBeLessThan(1000 + 0.01);
  });

  it("falls back to the worker's backoff when a backoff function throws or returns no number, and reports it", async () => {
    const bad = defineTask(
      "badBackoff",
      () => {
        throw new Error("fails");
      },
      { backoff: () => Number.NaN },
    );
    const worker = await startWorker({ tasks: [bad] });
    const reported = nextEvent(worker, "worker:error");
    const retrying = nextEvent(worker, "task:retrying");
    const task = await env.client.createTask("badBackoff", [], { maxRetries: 1 });
    await retrying;
    expect((await reported)[0]).toMatchObject({ during: expect.stringMatching(/backoff of task badBackoff/) });
    expect(await retryDelayOf(task.id)).toBeGreaterThanOrEqual(500 - 0.01);
  });
});

describe("the errors history", () => {
  it("keeps type, message, stack, attempt, worker and time of every failed attempt; error keeps the last text", async () => {
    const failing = defineTask(
      "failing",
      () => {
        throw new TypeError(`attempt ${taskContext().attempt} went wrong`);
      },
      { backoff: () => 0 },
    );
    const worker = await startWorker({ tasks: [failing] });
    const before = Date.now();
    const done = await finished(await env.client.createTask("failing", [], { maxRetries: 2 }));
    expect(done.status).toBe("FAILED");
    expect(done.errors).toHaveLength(3);
    done.errors.forEach((e, i) => {
      expect(e).toMatchObject({ type: "TypeError", message: `attempt ${i + 1} went wrong`, attempt: i + 1 });
      expect(e.workerId).toBe(worker.id);
      expect(e.stack).toMatch(/^TypeError: attempt \d went wrong\n\s+at /);
      expect(e.at).toBeInstanceOf(Date);
      expect(e.at.getTime()).toBeGreaterThan(before - 5000);
    });
    expect(done.error).toMatch(/^TypeError: attempt 3 went wrong/);
  });

  it("stays small for a task retried many times: the first entry and the latest, messages and stacks cut", async () => {
    const long = "x".repeat(10_000);
    const noisy = defineTask(
      "noisy",
      () => {
        const e = new Error(`${taskContext().attempt}:${long}`);
        e.stack = `Error: ${e.message}\n${"    at somewhere (file.js:1:1)\n".repeat(500)}`;
        throw e;
      },
      { backoff: () => 0 },
    );
    await startWorker({ tasks: [noisy] });
    const done = await finished(await env.client.createTask("noisy", [], { maxRetries: 24 }));
    expect(done).toMatchObject({ status: "FAILED", attempt: 25 });
    expect(done.errors).toHaveLength(MAX_STORED_ERRORS);
    expect(done.errors.map((e) => e.attempt)).toEqual([1, ...Array.from({ length: 9 }, (_, i) => 17 + i)]);
    for (const e of done.errors) {
      expect(e.message.length).toBeLessThanOrEqual(STORED_MESSAGE_CHARS);
      expect(e.stack!.length).toBeLessThanOrEqual(STORED_STACK_CHARS);
    }
    const { rows } = await env.pool.query(`SELECT pg_column_size(errors) AS bytes FROM "${env.schema}".tasks`);
    expect(rows[0].bytes).toBeLessThan(40_000);
  });

  it("records a task the sweep takes back from a lost worker as WorkerLostError, without a stack", async () => {
    const [id] = await insertCrashedTasks(env.pool, env.schema, 1, { maxRetries: 1, retryCount: 0 });
    await startWorker({ tasks: { recorded: () => "ok" }, heartbeatInterval: 0.1, staleAfter: 0.5 });
    const done = (await finished({ id: id! })) as Task;
    expect(done.status).toBe("COMPLETED");
    expect(done.errors).toEqual([
      {
        type: "WorkerLostError",
        message: expect.stringMatching(/^worker lost: no heartbeat from worker dead-host/),
        stack: null,
        attempt: 1,
        workerId: CRASHED_WORKER,
        at: expect.any(Date),
      },
    ]);
  });

  it("records skiplock's own failures (an unknown task) with their type and message", async () => {
    await startWorker({ tasks: { known: () => 1 } });
    const done = await finished(await env.client.createTask("unknown.task"));
    expect(done.errors).toEqual([
      expect.objectContaining({ type: "UnknownTaskError", message: expect.stringMatching(/^unknown task "unknown/) }),
    ]);
    expect(done.errors[0]!.stack).toBeNull();
  });
});

describe("defineTask's policy options", () => {
  it("refuses a backoff or retryOn of the wrong shape with InvalidOptionError", () => {
    const handler = () => 1;
    const bad: [object, RegExp][] = [
      [{ backoff: 5 }, /backoff/],
      [{ backoff: { base: -1 } }, /backoff\.base/],
      [{ backoff: { base: 1, max: "2" } }, /backoff\.max/],
      [{ backoff: { base: 1, cap: 2 } }, /cap/],
      [{ backoff: null }, /backoff/],
      [{ retryOn: true }, /retryOn/],
    ];
    for (const [options, message] of bad) {
      expect(() => defineTask("t", handler, options as never)).toThrow(InvalidOptionError);
      expect(() => defineTask("t", handler, options as never)).toThrow(message);
    }
    expect(() => defineTask("t", handler, { backoff: { base: 1 }, retryOn: () => true })).not.toThrow();
  });

  it("are checked again by a worker, for definitions made elsewhere", () => {
    const made = { name: "t", handler: () => 1, options: { backoff: { base: "1" } } };
    expect(() => new Worker({ databaseUrl: DATABASE_URL, tasks: [made] as never })).toThrow(/backoff\.base/);
  });
});

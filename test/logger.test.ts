// The default logger (pino JSON on stderr, or pretty lines), a user's own pino, and what the worker logs per task.
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import {
  PermanentError,
  pinoLogger,
  SkiplockClient,
  taskContext,
  type Logger,
  type WorkerOptions,
} from "../src/index.js";
import { resolveLogger } from "../src/logger.js";
import { waitFor } from "./helpers.js";
import { workerFixture } from "./worker-fixture.js";
import { recordEvents } from "./worker-events.js";

const f = workerFixture({
  label: "logger",
  workerDefaults: { retryBackoff: { base: 0.01, max: 0.02 }, metrics: false },
});

const SECRET = /s3cret|hunter2|r3dis/;

/** A destination keeping every line written to it. */
function capture(): { lines: string[]; write(line: string): void; json(): Record<string, unknown>[] } {
  const lines: string[] = [];
  return {
    lines,
    write: (line) => void lines.push(line),
    json: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe("pinoLogger", () => {
  it("writes one JSON object a line, with the fields, and no secret", () => {
    const out = capture();
    const log = pinoLogger({ level: "info", destination: out });
    log.warn("cannot reach postgres://app:s3cret@db/app", { url: "redis://:r3dis@cache:6379", q: "?password=hunter2" });
    log.debug("not written at info");
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]).not.toMatch(SECRET);
    expect(out.json()[0]).toMatchObject({
      level: 40,
      msg: "cannot reach postgres://app:***@db/app",
      url: "redis://:***@cache:6379",
      q: "?password=***",
    });
    expect(log.isLevelEnabled!("debug")).toBe(false);
    expect(log.isLevelEnabled!("info")).toBe(true);
  });

  it("pretty: one readable line, no JSON, no secret", () => {
    const out = capture();
    const log = pinoLogger({ level: "debug", format: "pretty", destination: out });
    log.error("failed at postgres://app:s3cret@db/app", {
      task: "12",
      name: "email.send",
      queue: "mail",
      error: "Error: two words",
    });
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} ERROR failed at postgres:\/\/app:\*\*\*@db\/app task=12 name=email.send queue=mail error="Error: two words"\n$/,
    );
  });

  it("refuses an unknown level or format", () => {
    expect(() => pinoLogger({ level: "loud" as never })).toThrow(/level/);
    expect(() => pinoLogger({ format: "xml" as never })).toThrow(/format/);
  });
});

describe("a user's own logger", () => {
  it("a pino logger is called pino's way (fields first), its lines redacted", () => {
    const out = capture();
    const mine = pino({ level: "debug" }, out);
    const log = resolveLogger(mine as unknown as Logger);
    log.warn("lost postgres://app:s3cret@db/app", { task: "7", error: "at redis://:r3dis@cache" });
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]).not.toMatch(SECRET);
    expect(out.json()[0]).toMatchObject({ level: 40, msg: "lost postgres://app:***@db/app", task: "7" });
  });

  it("a client takes it as its logger", async () => {
    const out = capture();
    const client = new SkiplockClient({
      databaseUrl: f.databaseUrl,
      schema: f.schema,
      logger: pino({ level: "info" }, out) as unknown as Logger,
    });
    client.logger.info("hello", { n: 1 });
    await client.close();
    expect(out.json()[0]).toMatchObject({ msg: "hello", n: 1 });
  });

  it("a logger without the four methods is refused", () => {
    expect(() => resolveLogger({ info() {} } as unknown as Logger)).toThrow(/logger/);
  });
});

describe("what a worker logs about tasks", () => {
  const tasks: WorkerOptions["tasks"] = {
    ok: () => 1,
    boom: () => {
      throw new PermanentError("no");
    },
    flaky: () => {
      if (taskContext().attempt === 1) throw new Error("first time");
    },
  };

  it("at debug, one line per state change, each with the task's id, name, queue and attempt", async () => {
    const out = capture();
    const worker = await f.startWorker({ tasks, logger: pinoLogger({ level: "debug", destination: out }) });
    const ended = recordEvents(worker, ["task:completed", "task:failed"]);
    const ok = await f.client.createTask("ok", []);
    const boom = await f.client.createTask("boom", [], { queue: "default" });
    const flaky = await f.client.createTask("flaky", [], { maxRetries: 1 });
    await waitFor("the tasks ended", () => ended.length === 3);
    const about = (id: string) => out.json().filter((l) => l.task === id);
    for (const [t, states] of [
      [ok, ["task started", "task completed"]],
      [boom, ["task started", "task failed"]],
    ] as const) {
      const debug = about(t.id).filter((l) => l.level === 20);
      expect(debug.map((l) => l.msg)).toEqual(states);
      for (const l of debug) expect(l).toMatchObject({ task: t.id, name: t.name, queue: "default", attempt: 1 });
    }
    const again = about(flaky.id).filter((l) => l.level === 20);
    expect(again.map((l) => [l.msg, l.attempt])).toEqual([
      ["task started", 1],
      ["task retrying", 1],
      ["task started", 2],
      ["task completed", 2],
    ]);
    // The warning about the failed attempt names the task the same way.
    const warning = about(boom.id).find((l) => l.level === 40);
    expect(warning).toMatchObject({ task: boom.id, name: "boom", queue: "default", attempt: 1 });
  });

  it("at info, listens to no task event: nothing is built or logged per task", async () => {
    const out = capture();
    const worker = await f.startWorker({ tasks, logger: pinoLogger({ level: "info", destination: out }) });
    for (const e of ["task:started", "task:completed", "task:failed", "task:retrying", "task:swept"] as const) {
      expect(worker.listenerCount(e), e).toBe(0);
    }
    const t = await f.client.createTask("ok", []);
    await f.finished(t);
    expect(out.json().filter((l) => l.task === t.id)).toEqual([]);
  });
});

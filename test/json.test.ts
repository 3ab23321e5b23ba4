import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  InvalidOptionError,
  NotJsonError,
  PayloadTooLargeError,
  SkiplockClient,
  UnknownOptionError,
  defineTask,
} from "../src/index.js";
import { clientInternals } from "../src/client.js";
import { DEFAULT_MAX_PAYLOAD_BYTES, toJsonText } from "../src/json.js";
import { storableText } from "../src/json-storable.js";
import { assertKnownKeys } from "../src/options.js";
import { insertTasks } from "../src/sql/insert.js";
import { prepareTask } from "../src/task.js";
import { DATABASE_URL, freshSchema, quiet } from "./helpers.js";

/** The error `fn` throws. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a throw");
}

function nested(depth: number): unknown {
  let v: unknown = [];
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

describe("toJsonText: what Postgres cannot store", () => {
  it("refuses a NUL character or a lone surrogate in a string or a key, with its path", () => {
    const cases: [unknown, RegExp][] = [
      [["a\u0000b"], /^args\[0\] cannot be stored as JSON: .*NUL/],
      [[{ text: "\uD800" }], /^args\[0\]\.text cannot .*lone UTF-16 surrogate/],
      [[1, { deep: ["ok", "x\uDC00"] }], /^args\[1\]\.deep\[1\] .*surrogate/],
      [["\uDBFF\uDBFF\uDC00"], /^args\[0\] .*surrogate/], // a high surrogate followed by a pair
      [[{ "k\u0000": 1 }], /^args\[0\]\["k\\u0000"\] .*a key contains a NUL/],
      [[{ when: { toJSON: () => "\u0000" } }], /^args\[0\]\.when .*NUL/],
    ];
    for (const [value, message] of cases) {
      const err = thrown(() => toJsonText(value, "args"));
      expect(err).toBeInstanceOf(NotJsonError);
      expect(err.message).toMatch(message);
    }
  });

  it("accepts surrogate pairs, other control characters, and the text of an escape", () => {
    const value = ["😀 \uD83D\uDE00", "\u0001\u001f\t", "\\u0000", "\\\\u0000", "\\ud800", { "\\u0000": "\\" }];
    expect(JSON.parse(toJsonText(value, "args"))).toEqual(value);
  });

  it("turns deep nesting, a throwing getter and a throwing toJSON into NotJsonError with the cause", () => {
    const deep = thrown(() => toJsonText([nested(100_000)], "args"));
    expect(deep).toBeInstanceOf(NotJsonError);
    expect(deep.message).toMatch(/^args cannot be stored as JSON: it is nested too deeply/);
    expect(deep.cause).toBeInstanceOf(RangeError);

    const getter = thrown(() =>
      toJsonText(
        [
          {
            ok: 1,
            get bad(): number {
              throw new TypeError("no access");
            },
          },
        ],
        "args",
      ),
    );
    expect(getter).toBeInstanceOf(NotJsonError);
    expect(getter.message).toMatch(/^args\[0\]\.bad cannot be stored as JSON: reading it threw TypeError: no access/);
    expect(getter.cause).toBeInstanceOf(TypeError);

    const toJson = thrown(() =>
      toJsonText(
        {
          x: {
            toJSON: () => {
              throw new Error("nope");
            },
          },
        },
        "result",
      ),
    );
    expect(toJson).toBeInstanceOf(NotJsonError);
    expect(toJson.message).toMatch(/^result\.x .*toJSON\(\) threw Error: nope/);
    expect((toJson.cause as Error).message).toBe("nope");
  });

  it("measures size in UTF-8 bytes against the limit", () => {
    expect(toJsonText(["abc"], "args", 9, "maxArgsBytes")).toBe('["abc"]');
    expect(toJsonText(["ééé"], "args", 10, "maxArgsBytes")).toBe('["ééé"]'); // 7 characters, 10 bytes of UTF-8
    const err = thrown(() => toJsonText(["éééé"], "args", 10, "maxArgsBytes")); // 8 characters, 12 bytes
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect(err).toMatchObject({ code: "PAYLOAD_TOO_LARGE", path: "args", bytes: 12, limit: 10 });
    expect(err.message).toBe("args is 12 bytes of JSON, more than maxArgsBytes allows (10 bytes)");
  });

  it("makes error text storable: NUL escaped, lone surrogates replaced, pairs kept", () => {
    expect(storableText("bad\u0000error \uD800 😀")).toBe("bad\\u0000error \uFFFD 😀");
    const plain = "nothing to change";
    expect(storableText(plain)).toBe(plain);
  });
});

describe("task options", () => {
  it("refuses unknown keys with a typed error listing the valid ones", () => {
    const err = thrown(() => prepareTask({ name: "x", retries: 3 } as never));
    expect(err).toBeInstanceOf(UnknownOptionError);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as UnknownOptionError).code).toBe("INVALID_OPTION");
    expect(err.message).toBe(
      "invalid option retries: not an option of createTask (did you mean maxRetries?); " +
        "valid options are name, args, queue, priority, timeout, maxRetries, runAt, delay, uniqueKey, uniqueMode, meta",
    );
    expect(thrown(() => prepareTask({ name: "x", qeue: "a" } as never, "specs[2].args")).message).toMatch(
      /^invalid option qeue: not an option of createTasks specs\[2\] \(did you mean queue\?\)/,
    );
    // A key left undefined (as spreading optional settings makes) is no typo.
    expect(prepareTask({ name: "x", retries: undefined } as never).name).toBe("x");
    expect(thrown(() => assertKnownKeys("new Worker", 5, ["a"]))).toBeInstanceOf(InvalidOptionError);
    expect(thrown(() => prepareTask(null as never, "specs[0].args"))).toBeInstanceOf(InvalidOptionError);
  });

  it("refuses unknown keys in defineTask options and in using()", () => {
    expect(thrown(() => defineTask("d.keys", () => 1, { priorty: 1 } as never)).message).toMatch(
      /not an option of defineTask\("d\.keys"\) \(did you mean priority\?\); valid options are .*isolation/,
    );
    const d = defineTask("d.keys", () => 1);
    expect(thrown(() => d.using({ dealy: 5 } as never))).toBeInstanceOf(UnknownOptionError);
    expect(thrown(() => d.using({ isolation: "thread" } as never)).message).toMatch(/valid options are .*client/);
  });

  it("caps runAt as delay is capped: 10 years ahead", () => {
    const err = thrown(() => prepareTask({ name: "x", runAt: new Date(Date.UTC(20000, 0, 1)) }));
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.message).toMatch(/^invalid option runAt: expected a time at most 315360000 s \(10 years\) from now/);
    expect(thrown(() => prepareTask({ name: "x", delay: 11 * 365 * 86_400 }))).toBeInstanceOf(InvalidOptionError);
    const soon = new Date(Date.now() + 9 * 365 * 86_400_000);
    expect(prepareTask({ name: "x", runAt: soon }).runAt).toBe(soon);
    expect(thrown(() => prepareTask({ name: "x", runAt: new Date(Date.UTC(-5000, 0, 1)) }))).toBeInstanceOf(
      InvalidOptionError,
    );
  });

  it("refuses args over maxArgsBytes, the default fitting Postgres' jsonb", () => {
    const err = thrown(() => prepareTask({ name: "x", args: ["y".repeat(100)] }, "specs[1].args", 64));
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect(err.message).toMatch(/^specs\[1\]\.args is 104 bytes of JSON, more than maxArgsBytes allows \(64 bytes\)/);
    expect(DEFAULT_MAX_PAYLOAD_BYTES).toBeLessThan(255 * 1024 * 1024);
  });
});

describe("createTask and createTasks refuse what Postgres cannot store", () => {
  let env: Awaited<ReturnType<typeof freshSchema>>;
  let client: SkiplockClient;
  const count = async () => Number((await env.pool.query(`SELECT count(*) AS n FROM "${env.schema}".tasks`)).rows[0].n);

  beforeAll(async () => {
    env = await freshSchema("json");
    client = new SkiplockClient({ databaseUrl: DATABASE_URL, schema: env.schema, redisUrl: null, logger: quiet });
  });

  afterAll(async () => {
    await client.close();
    await env.drop();
  });

  it("with NotJsonError (path included) or a typed option error, before anything is written", async () => {
    const before = await count();
    const cases: [() => Promise<unknown>, new (...a: never[]) => Error, RegExp][] = [
      [() => client.createTask("x", ["a\u0000b"]), NotJsonError, /^args\[0\] .*NUL/],
      [() => client.createTask("x", [{ s: "\uD800" }]), NotJsonError, /^args\[0\]\.s .*surrogate/],
      [
        () => client.createTasks([{ name: "x" }, { name: "x", args: [["\uDFFF"]] }]),
        NotJsonError,
        /^specs\[1\]\.args\[0\]\[0\] /,
      ],
      [() => client.createTask("x", [nested(50_000)]), NotJsonError, /nested too deeply/],
      [
        () =>
          client.createTask("x", [
            {
              get boom(): number {
                throw new Error("getter");
              },
            },
          ]),
        NotJsonError,
        /args\[0\]\.boom .*getter/,
      ],
      [() => client.createTask("x", [], { retries: 3 } as never), UnknownOptionError, /did you mean maxRetries/],
      [() => client.createTasks([{ name: "x", retries: 1 } as never]), UnknownOptionError, /createTasks specs\[0\]/],
      [() => client.createTask("x", [], { runAt: new Date(Date.UTC(20000, 0, 1)) }), InvalidOptionError, /runAt/],
      [() => client.createTask("x", ["z".repeat(DEFAULT_MAX_PAYLOAD_BYTES)]), PayloadTooLargeError, /maxArgsBytes/],
    ];
    for (const [call, type, message] of cases) {
      const err = await call().catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(type);
      expect((err as Error).message).toMatch(message);
    }
    expect(await count()).toBe(before);
  });

  it("writes a batch larger than one statement carries in several, in one transaction, in order", async () => {
    const big = "b".repeat(12 * 1024 * 1024);
    const specs = [0, 1, 2].map((i) => ({ name: "big", args: [i, big] }));
    const tasks = await client.createTasks(specs);
    expect(tasks.map((t) => t.args[0])).toEqual([0, 1, 2]);
    expect(tasks.map((t) => BigInt(t.id))).toEqual(tasks.map((t) => BigInt(t.id)).sort((a, b) => (a < b ? -1 : 1)));
    const { rows } = await env.pool.query(
      `SELECT id::text, length(args->>1) AS n FROM "${env.schema}".tasks WHERE name = 'big' ORDER BY id`,
    );
    expect(rows).toEqual(tasks.map((t) => ({ id: t.id, n: big.length })));

    // A later statement that Postgres refuses undoes the earlier ones.
    const before = await count();
    const prepared = specs.map((s) => prepareTask(s));
    prepared.push({ ...prepared[0]!, argsJson: '["\\u0000"]' });
    const { store } = clientInternals(client);
    await expect(insertTasks(store.pool, store.tasks, prepared)).rejects.toMatchObject({ code: "22P05" });
    expect(await count()).toBe(before);
  });
});

import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DATABASE_URL, REDIS_URL, freePort, freshSchema, spawnProc, stopProc, type Proc } from "./helpers.js";

// Runs the built package (dist/): `npm run build` first.
const SCRIPT = fileURLToPath(new URL("./fixtures/script.js", import.meta.url));

let env: Awaited<ReturnType<typeof freshSchema>>;
const procs: Proc[] = [];

beforeAll(async () => {
  env = await freshSchema("script_exit");
});

afterEach(async () => {
  // A script that hangs (the bug) is killed here once its test has timed out.
  await Promise.all(procs.splice(0).map((p) => stopProc(p, "SIGKILL")));
});

afterAll(async () => {
  await env?.drop();
});

/** Runs the fixture script with this REDIS_URL; resolves with its exit and how long it lived after its last line. */
async function runScript(redisUrl: string) {
  const p = spawnProc(process.execPath, [SCRIPT], { DATABASE_URL, SKIPLOCK_SCHEMA: env.schema, REDIS_URL: redisUrl });
  procs.push(p);
  let printedAt = 0;
  void p.waitForOutput(/^done \d+ PENDING null$/m, 60_000).then(
    () => (printedAt = Date.now()),
    () => {},
  );
  const exit = await p.exited;
  return { exit, output: p.output(), lingeredMs: printedAt === 0 ? Infinity : Date.now() - printedAt };
}

describe("a script using the default client", () => {
  const cases: [string, () => Promise<string>][] = [
    ["Redis refuses connections", async () => `redis://127.0.0.1:${await freePort()}`],
    ["Redis's host does not resolve", async () => "redis://nonexistent.invalid:6379"],
    ["Redis is up", async () => REDIS_URL],
  ];

  for (const [when, url] of cases) {
    it(`exits 0 as soon as its work is done when ${when}`, { timeout: 30_000 }, async () => {
      const { exit, output, lingeredMs } = await runScript(await url());
      expect(exit, output).toEqual({ code: 0, signal: null });
      expect(output).toMatch(/^done \d+ PENDING null$/m);
      // Nothing it left behind (a reconnect timer, an idle socket) kept it alive after its last line.
      expect(lingeredMs, output).toBeLessThan(5_000);
    });
  }
});

// The documented way to test an app's tasks on the embedded database (examples/testing): it runs, each file on a
// fresh pglite:memory database, with no server.
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { spawnProc } from "./helpers.js";

const VITEST = fileURLToPath(new URL("../node_modules/vitest/vitest.mjs", import.meta.url));

describe("examples/testing", () => {
  it("passes, with no DATABASE_URL or REDIS_URL", async () => {
    const p = spawnProc(process.execPath, [VITEST, "run", "--config", "examples/testing/vitest.config.js"], {
      DATABASE_URL: undefined,
      REDIS_URL: undefined,
      SKIPLOCK_TEST_DB: undefined,
    });
    const { code } = await p.exited;
    expect(code, p.output()).toBe(0);
    expect(p.output()).toMatch(/Tests\s.*3 passed/);
  }, 120_000);
});

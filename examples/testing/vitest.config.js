// Integration tests on the embedded database: no Postgres, no Redis, nothing to start before `vitest run`.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["examples/testing/*.test.js"],
    // Each test file runs in a process of its own, so each has its own `pglite:memory` database.
    pool: "forks",
  },
});

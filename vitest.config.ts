import { defineConfig } from "vitest/config";

/**
 * The core files, run a second time on the embedded database (PGlite, `pglite:memory`, one instance per file; see
 * test/embedded-place.ts). A test in them that needs what the embedded database does not have (several processes,
 * Redis, connections of its own) skips there, its name saying why.
 */
const EMBEDDED_CORE = [
  "test/client.test.ts",
  "test/worker.test.ts",
  "test/retry-policy.test.ts",
  "test/outcomes.test.ts",
  "test/cancel.test.ts",
  "test/client.unique.test.ts",
  "test/schedules.test.ts",
  "test/purge.test.ts",
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Tests spawn worker processes and hold database connections; two files at a time suit a 2-core machine.
    maxWorkers: 2,
    fileParallelism: true,
    // vi.stubEnv changes are undone after each test.
    unstubEnvs: true,
    setupFiles: ["test/setup.ts"],
    projects: [
      { extends: true, test: { name: "postgres", include: ["test/**/*.test.ts"] } },
      { extends: true, test: { name: "embedded", include: EMBEDDED_CORE, env: { SKIPLOCK_TEST_DB: "pglite" } } },
    ],
  },
});

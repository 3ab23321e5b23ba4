import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Tests spawn worker processes and hold database connections; two files at a time suit a 2-core machine.
    maxWorkers: 2,
    fileParallelism: true,
    // vi.stubEnv changes are undone after each test.
    unstubEnvs: true,
    setupFiles: ["test/setup.ts"],
  },
});

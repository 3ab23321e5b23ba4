// Runs in every test file: fails a file that leaves a Worker running, and marks a file whose test failed so that
// its schema is kept for inspection (see freshSchema).
import { afterAll, beforeEach } from "vitest";
import { workersNotStopped } from "../src/worker/worker.js";
import { testFile } from "./helpers.js";

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    testFile.failed = true;
  });
});

afterAll(async () => {
  const left = workersNotStopped();
  if (left.length === 0) return;
  await Promise.all(left.map((w) => w.stop()));
  throw new Error(`this test file left ${left.length} Worker(s) running: ${left.map((w) => w.id).join(", ")}`);
});

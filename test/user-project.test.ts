// skiplock's test modes as a user meets them: test/fixtures/user-project is an app with its own tasks, code that
// enqueues them and a vitest file testing that code with ImmediateClient and DummyClient. Here it runs in a copy
// with skiplock linked into its node_modules (the package as `npm link` gives it: its exports and dist/), its tests
// in vitest in a child process and its types checked by tsc, with Postgres and Redis URLs that lead nowhere.
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ROOT } from "./helpers.js";

const exec = promisify(execFile);
const project = join(mkdtempSync(join(tmpdir(), "skiplock-user-")), "user-project");

// Nothing of this suite's own run leaks into the child's (vitest's variables would make it think it is a worker).
const childEnv: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(VITEST|npm_)|^NODE_OPTIONS$/i.test(k))),
  DATABASE_URL: "postgres://postgres@127.0.0.1:1/nowhere",
  REDIS_URL: "redis://127.0.0.1:1",
};

beforeAll(() => {
  if (!existsSync(join(ROOT, "dist/src/index.js"))) throw new Error("dist/ is missing: run `npm run build` first");
  cpSync(join(ROOT, "test/fixtures/user-project"), project, { recursive: true });
  mkdirSync(join(project, "node_modules"));
  symlinkSync(ROOT, join(project, "node_modules/skiplock"), "dir");
  symlinkSync(join(ROOT, "node_modules/vitest"), join(project, "node_modules/vitest"), "dir");
});

afterAll(() => {
  rmSync(join(project, ".."), { recursive: true, force: true });
});

it("the fixture app's own tests pass with ImmediateClient and DummyClient, and its code type-checks", async () => {
  const vitest = exec(
    process.execPath,
    [join(ROOT, "node_modules/vitest/vitest.mjs"), "run", "--reporter=json", "--outputFile=results.json"],
    { cwd: project, env: childEnv },
  ).catch((err: { stdout: string; stderr: string }) => ({ ...err, failed: true }));
  const tsc = exec(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], {
    cwd: project,
    env: childEnv,
  }).catch((err: { stdout: string; stderr: string }) => ({ ...err, failed: true }));

  const run = await vitest;
  // On a failure, the fixture's own assertion messages (its JSON report) say what went wrong.
  const reportPath = join(project, "results.json");
  const failures = () =>
    existsSync(reportPath)
      ? JSON.stringify(
          (
            JSON.parse(readFileSync(reportPath, "utf8")) as {
              testResults: { assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[];
            }
          ).testResults
            .flatMap((f) => f.assertionResults)
            .filter((r) => r.status !== "passed"),
          null,
          2,
        )
      : "";
  expect(run, `${run.stdout}\n${run.stderr}\n${failures()}`).not.toHaveProperty("failed");
  const report = JSON.parse(readFileSync(join(project, "results.json"), "utf8")) as {
    success: boolean;
    numTotalTests: number;
    numPassedTests: number;
    testResults: { assertionResults: { fullName: string; status: string }[] }[];
  };
  const results = report.testResults.flatMap((f) => f.assertionResults);
  expect(results.map((r) => [r.fullName, r.status])).toEqual([
    [
      "signUp, its tasks run as they are enqueued (ImmediateClient) sends the welcome email and grants the credits",
      "passed",
    ],
    [
      "signUp, its tasks run as they are enqueued (ImmediateClient) a bad address fails the email task, or throws from signUp with propagateErrors",
      "passed",
    ],
    [
      "signUp, its tasks recorded and run on request (DummyClient) enqueues one email and one credit task per user, then they run in priority order",
      "passed",
    ],
    [
      "signUp, its tasks recorded and run on request (DummyClient) resendWelcome schedules the email an hour ahead, at priority 10",
      "passed",
    ],
    [
      "profileEdited, debounced by a unique key a burst of edits makes one reindex, with the last fields, run once",
      "passed",
    ],
  ]);
  expect(report.success).toBe(true);

  const types = await tsc;
  expect(types.stdout).toBe("");
});

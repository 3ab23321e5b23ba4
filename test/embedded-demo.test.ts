// `npm run demo` with no DATABASE_URL runs on the embedded database, with no server to reach: here it is run in a
// network namespace of its own (`unshare -n`, which needs root), where no Postgres and no Redis can be reached.
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { spawnProc } from "./helpers.js";
import { missingTools } from "./system-tools.js";

/** Why `unshare -n` cannot run here (no program, or not allowed: it needs root), or null. */
function cannotUnshare(): string | null {
  const missing = missingTools("unshare");
  if (missing) return missing;
  const r = spawnSync("unshare", ["-n", "true"], { encoding: "utf8" });
  if (r.status === 0) return null;
  const reason = `unshare -n is not allowed here (it needs root): ${r.stderr.trim()}`;
  console.warn(`skipped: ${reason}`);
  return reason;
}

const skip = cannotUnshare();

// Exits 0 only when neither server answers: proof that the namespace has no route to them.
const PROBE = `
  const net = await import("node:net");
  const reach = (port) => new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.on("connect", () => { s.destroy(); resolve(true); });
    s.on("error", () => resolve(false));
  });
  const open = [];
  for (const port of [5432, 6379]) if (await reach(port)) open.push(port);
  if (open.length) { console.error("reachable: " + open.join(", ")); process.exit(1); }
  console.log("no Postgres, no Redis");`;

describe.skipIf(skip !== null)(`the demo without servers${skip ? ` (skipped: ${skip})` : ""}`, () => {
  it("runs on the embedded database in a network namespace where nothing can be reached", async () => {
    const env = { DATABASE_URL: undefined, REDIS_URL: undefined, SKIPLOCK_SCHEMA: undefined };
    const p = spawnProc(
      "unshare",
      ["-n", "sh", "-c", `node --input-type=module -e '${PROBE}' && node examples/demo.js`],
      env,
    );
    const { code } = await p.exited;
    const out = p.output();
    expect(out, out).toContain("no Postgres, no Redis");
    expect(code, out).toBe(0);
    expect(out).toContain("embedded database, pglite:memory");
    for (const line of [
      "multiply(6, 7) -> COMPLETED, result 42 (attempts 1",
      'flaky("retry-demo") -> COMPLETED, result "retry-demo succeeded on attempt 2" (attempts 2',
      'slowHello("delayed world", 100) -> COMPLETED, result "hello, delayed world"',
      'text.wordCount("Postgres keeps the tasks, Redis rings the bell") -> COMPLETED, result 8',
      "multiply(3, 3) -> COMPLETED, result 9",
      "worker stopped",
    ]) {
      expect(out).toContain(line);
    }
  }, 180_000);
});

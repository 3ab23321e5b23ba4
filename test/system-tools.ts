// Tests that drive a system program (Chromium, PgBouncer, Redis Sentinel, ip netns) skip with a reason where it is
// missing, so `npm test` passes on a laptop without them; under CI (CI=true, set by .ci/run, which installs them)
// a missing program fails the test instead of hiding it.
import { spawnSync } from "node:child_process";

const PATHS: Record<string, string> = {};

/** The program's path, or null when it is not installed. */
export function findTool(name: string): string | null {
  if (name in PATHS) return PATHS[name] || null;
  const r = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  const path = r.status === 0 ? r.stdout.trim() : "";
  PATHS[name] = path;
  return path || null;
}

export const underCi = process.env.CI === "true" || process.env.CI === "1";

/**
 * Why a test needing these programs cannot run here (to pass to `describe.skipIf`/`it.skipIf`), or null when all are
 * present. Under CI a missing program throws instead: CI installs them, so a skip there would hide a broken run.
 */
export function missingTools(...names: string[]): string | null {
  const missing = names.filter((n) => findTool(n) === null);
  if (missing.length === 0) return null;
  const reason = `needs ${missing.join(", ")} (apt-get install ${missing.join(" ")})`;
  if (underCi) throw new Error(`CI is missing a program its tests need: ${reason}`);
  console.warn(`skipped: ${reason}`);
  return reason;
}

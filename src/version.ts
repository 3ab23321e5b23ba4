import { readFileSync } from "node:fs";

/** skiplock's own version, from the package.json above this file (in src or, built, in dist/src). */
export function packageVersion(): string {
  for (let up = 1; up <= 4; up++) {
    const url = new URL(`${"../".repeat(up)}package.json`, import.meta.url);
    try {
      const pkg = JSON.parse(readFileSync(url, "utf8")) as { name?: unknown; version?: unknown };
      if (pkg.name === "skiplock" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // Not there, or not ours: look one level up.
    }
  }
  return "unknown";
}

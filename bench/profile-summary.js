// @ts-check
// Summarizes a V8 .cpuprofile (from `node --cpu-prof`, e.g. `npm run bench -- --profile`): self time by function
// and by package, so the hot spots of a worker can be read without DevTools.
//   node bench/profile-summary.js bench/results/profiles/CPU.….cpuprofile [--top 30]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

/**
 * @typedef {{ id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }} ProfileNode
 * @typedef {{ nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }} Profile
 */

const { values, positionals } = parseArgs({
  options: { top: { type: "string", default: "30" } },
  allowPositionals: true,
});
if (positionals.length === 0) {
  process.stderr.write("usage: node bench/profile-summary.js FILE.cpuprofile [--top N]\n");
  process.exit(2);
}
const top = Number(values.top) || 30;

for (const file of positionals) {
  /** @type {Profile} */
  const profile = JSON.parse(readFileSync(file, "utf8"));
  /** @type {Map<number, ProfileNode>} */
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  /** @type {Map<number, number>} */
  const selfUs = new Map();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

  /** @type {Map<string, number>} */
  const byFunction = new Map();
  /** @type {Map<string, number>} */
  const byPackage = new Map();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url
      .replace(/^file:\/\//, "")
      .replace(/^.*\/node_modules\//, "~/")
      .replace(/^.*\/dist\//, "dist/");
    const fn = `${functionName || "(anonymous)"} ${where ? `${where}:${lineNumber + 1}` : ""}`.trim();
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    byPackage.set(packageOf(url, functionName), (byPackage.get(packageOf(url, functionName)) ?? 0) + us);
  }
  const wall = (profile.endTime - profile.startTime) / 1e6;
  process.stdout.write(
    `\n${file}\nprofiled ${wall.toFixed(1)} s of wall time; samples cover ${(total / 1e6).toFixed(2)} s\n`,
  );
  process.stdout.write("\nself time by package:\n");
  for (const [k, us] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    process.stdout.write(`  ${pct(us, total)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}\n`);
  }
  process.stdout.write(`\nself time by function (top ${top}):\n`);
  for (const [k, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`  ${pct(us, total)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}\n`);
  }
}

/** @param {number} us @param {number} total */
function pct(us, total) {
  return `${((100 * us) / total).toFixed(1).padStart(5)}%`;
}

/** @param {string} url @param {string} fn */
function packageOf(url, fn) {
  if (!url) return fn === "(idle)" || fn === "(program)" || fn === "(garbage collector)" ? fn : "(native)";
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1] ?? "?";
  if (url.startsWith("node:")) return "node core";
  if (url.includes("/dist/")) return "skiplock (dist)";
  if (url.includes("/bench/")) return "bench";
  return url;
}

// @ts-check
// The package.json that npm packs and publishes, and the scripts that put it in place.
//
// The repository's package.json has a `prepare` script, so that `npm ci` in a clone builds the CLI. A published
// package should not carry it: it never runs from a registry tarball, yet npm lists it among the install scripts a
// user is asked to approve. So `prepack` (after the build) writes package.json without the scripts that only serve
// a clone, and puts the repository's back afterwards: `postpack` for `npm pack`, `postpublish` for `npm publish`,
// which reads package.json again after packing and sends that one to the registry. `postpublish` stays in the
// published manifest: npm publish runs the scripts of the manifest it read after packing.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** Scripts that only serve a clone of the repository. */
export const CLONE_ONLY_SCRIPTS = ["prepare", "prepack", "postpack"];

/**
 * The package.json to publish: the repository's without CLONE_ONLY_SCRIPTS.
 * @param {Record<string, unknown> & { scripts?: Record<string, string> }} pkg
 */
export function publishedManifest(pkg) {
  const scripts = { ...pkg.scripts };
  for (const name of CLONE_ONLY_SCRIPTS) delete scripts[name];
  return { ...pkg, scripts };
}

const root = fileURLToPath(new URL("..", import.meta.url));
const manifest = `${root}package.json`;
const saved = `${root}node_modules/.cache/skiplock/package.json`;

function restore() {
  if (existsSync(saved)) renameSync(saved, manifest);
}

function strip() {
  // A pack or publish that failed before its restore step left the published manifest in place: start over.
  restore();
  mkdirSync(dirname(saved), { recursive: true });
  copyFileSync(manifest, saved);
  const pkg = JSON.parse(readFileSync(manifest, "utf8"));
  writeFileSync(manifest, `${JSON.stringify(publishedManifest(pkg), null, 2)}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const step = process.argv[2];
  if (step === "strip") strip();
  // `npm publish` packs too: its postpack must leave the published manifest for the registry; postpublish restores.
  else if (step === "restore-after-pack" && process.env.npm_command !== "publish") restore();
  else if (step === "restore") restore();
  else if (step !== "restore-after-pack") {
    process.stderr.write("usage: node scripts/published-manifest.js strip | restore | restore-after-pack\n");
    process.exitCode = 2;
  }
}

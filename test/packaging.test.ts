// skiplock as a user gets it: packed as `npm publish` packs it, installed into an empty project, and used there as the
// README says: require() from CommonJS, types for CommonJS and ESM code, `npx skiplock migrate`, `run-worker`.
// Packs the dist/ that `npm test` built (the package's own prepack would rebuild it under the other test files' feet).
import { execFile, spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publishedManifest } from "../scripts/published-manifest.js";
import { DATABASE_URL, REDIS_URL, ROOT, uniqueName } from "./helpers.js";

const exec = promisify(execFile);

interface Manifest {
  name: string;
  version: string;
  license?: string;
  files: string[];
  engines?: { node?: string };
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
}

const repoManifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as Manifest;
const tmp = mkdtempSync(join(tmpdir(), "skiplock-pack-"));
const consumer = join(tmp, "consumer");
const schema = uniqueName("packaging");
let packed: { manifest: Manifest; files: string[] };

// npm runs this suite with npm_* variables (npm_config_local_prefix among them) that would point a child npm at
// this repository instead of the consumer project.
const childEnv: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))),
  npm_config_update_notifier: "false",
  npm_config_fund: "false",
  npm_config_audit: "false",
  DATABASE_URL,
  REDIS_URL,
  SKIPLOCK_SCHEMA: schema,
};

function npx(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return exec("npx", ["--no-install", "skiplock", ...args], { cwd: consumer, env: childEnv });
}

beforeAll(async () => {
  if (!existsSync(join(ROOT, "dist/src/index.js"))) throw new Error("dist/ is missing: run `npm run build` first");
  // What `npm publish` packs: the files the manifest lists, under the manifest prepack writes.
  const stage = join(tmp, "stage");
  for (const entry of repoManifest.files) cpSync(join(ROOT, entry), join(stage, entry), { recursive: true });
  writeFileSync(join(stage, "package.json"), JSON.stringify(publishedManifest({ ...repoManifest }), null, 2));
  const pack = await exec("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", tmp], {
    cwd: stage,
    env: childEnv,
  });
  const [report] = JSON.parse(pack.stdout) as [{ filename: string; files: { path: string }[] }];
  const tarball = join(tmp, report.filename);
  packed = {
    manifest: JSON.parse(readFileSync(join(stage, "package.json"), "utf8")) as Manifest,
    files: report.files.map((f) => f.path),
  };

  cpSync(join(ROOT, "test/fixtures/consumer"), consumer, { recursive: true });
  // The dependencies come from npm's cache, where `npm ci` left them.
  await exec("npm", ["install", tarball, "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: consumer,
    env: childEnv,
  });
}, 120_000);

afterAll(async () => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => pool.end());
  rmSync(tmp, { recursive: true, force: true });
});

describe("the published package", () => {
  it("holds the build, its sources for the source maps, the migrations, README and LICENSE, and nothing else", () => {
    for (const f of [
      "package.json",
      "LICENSE",
      "README.md",
      "dist/bin/skiplock.js",
      "dist/src/index.js",
      "dist/src/index.d.ts",
    ]) {
      expect(packed.files).toContain(f);
    }
    expect(packed.files.filter((f) => f.startsWith("migrations/")).length).toBeGreaterThan(0);
    expect(packed.files.filter((f) => /^(test|examples|bench|scripts|node_modules)\//.test(f))).toEqual([]);
    // Every source map names sources that ship beside it.
    const maps = packed.files.filter((f) => f.endsWith(".map"));
    expect(maps.length).toBeGreaterThan(0);
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(join(ROOT, map), "utf8")) as { sources: string[] };
      for (const source of sources)
        expect(packed.files, `${map} → ${source}`).toContain(posix.join(posix.dirname(map), source));
    }
    expect(readFileSync(join(ROOT, "LICENSE"), "utf8")).toMatch(
      /^MIT License\n\nCopyright \(c\) \d{4} skiplock contributors\n/,
    );
    expect(packed.manifest.license).toBe("MIT");
  });

  it("runs no script when installed: no prepare (the repository keeps it, so `npm ci` in a clone builds)", () => {
    for (const s of ["prepare", "preinstall", "install", "postinstall", "prepack", "postpack"]) {
      expect(packed.manifest.scripts, s).not.toHaveProperty(s);
    }
    expect(repoManifest.scripts.prepare).toBe("npm run build");
    expect(repoManifest.scripts.prepack).toMatch(/npm run build && node scripts\/published-manifest\.js strip$/);
    expect(repoManifest.scripts.postpack).toBe("node scripts/published-manifest.js restore-after-pack");
    expect(repoManifest.scripts.postpublish).toBe("node scripts/published-manifest.js restore");
  });

  it("CommonJS: require('skiplock') gives the same module as import()", async () => {
    const { stdout } = await exec(process.execPath, ["load.cjs"], { cwd: consumer, env: childEnv });
    const loaded = JSON.parse(stdout) as { exports: string[]; types: string[]; sameModule: boolean };
    expect(loaded.types).toEqual(["function", "function", "function", "function"]);
    expect(loaded.exports).toEqual(expect.arrayContaining(["createTask", "SkiplockError", "DatabaseUnavailableError"]));
    expect(loaded.sameModule).toBe(true);
  });

  it("types for CommonJS (.cts) and ESM (.mts) TypeScript consumers, with module nodenext", async () => {
    const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
    const r = await exec(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: consumer, env: childEnv }).catch(
      (err: { stdout: string }) => ({ stdout: err.stdout, stderr: "", failed: true }),
    );
    expect(r.stdout).toBe("");
  });

  it("npx skiplock --version, migrate, and run-worker with a tasks module resolved from the working directory", async () => {
    expect((await npx(["--version"])).stdout).toBe(`${repoManifest.version}\n`);
    expect((await npx(["migrate"])).stdout).toMatch(new RegExp(`schema "${schema}": applied 0001_tasks`));

    const worker = spawn(
      "npx",
      ["--no-install", "skiplock", "run-worker", "--tasks", "./tasks.cjs", "--concurrency", "2"],
      {
        cwd: consumer,
        env: childEnv,
        detached: true, // its own process group: npx and the worker under it are stopped together
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let output = "";
    worker.stdout.on("data", (d: Buffer) => (output += d.toString()));
    worker.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => worker.on("exit", () => resolve()));
    try {
      await new Promise<void>((resolve, reject) => {
        const check = () => /worker started/.test(output) && resolve();
        worker.stderr.on("data", check);
        worker.on("exit", () => reject(new Error(`run-worker exited:\n${output}`)));
      });
      const product = JSON.parse((await npx(["enqueue", "multiply", "[6, 7]", "--wait", "20"])).stdout) as {
        result: unknown;
      };
      expect(product).toMatchObject({ status: "COMPLETED", result: 42 });
      const greeting = JSON.parse((await npx(["enqueue", "consumer.greet", '["you"]', "--wait", "20"])).stdout) as {
        result: unknown;
      };
      expect(greeting).toMatchObject({ status: "COMPLETED", result: "hello you, attempt 1" });
    } finally {
      if (worker.exitCode === null && worker.signalCode === null) process.kill(-worker.pid!, "SIGTERM");
      await exited;
    }
  });
});

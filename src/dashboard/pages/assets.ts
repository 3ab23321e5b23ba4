import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/*
 * The pages' one script and one stylesheet, hand-written files in ./assets, shipped in the package's src/ (the build
 * emits TypeScript and JavaScript only, so from dist/ they are read from the package's src/). Read once, served with
 * a content hash in their URL, so a browser may keep them for a year and still gets a changed file at once.
 */

export interface Asset {
  body: string;
  type: string;
  /** A short content hash, for the URL. */
  version: string;
}

const TYPES: Record<string, string> = {
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
};

function folder(): URL {
  const here = new URL("./assets/", import.meta.url);
  if (existsSync(fileURLToPath(new URL("app.css", here)))) return here;
  // dist/src/dashboard/pages/ → the package root's src/dashboard/pages/assets/
  return new URL("../../../../src/dashboard/pages/assets/", import.meta.url);
}

let loaded: Map<string, Asset> | null = null;

/** The asset named `name` (app.js or app.css), or null. */
export function asset(name: string): Asset | null {
  if (loaded === null) {
    const dir = folder();
    loaded = new Map(
      Object.entries(TYPES).map(([file, type]) => {
        const body = readFileSync(fileURLToPath(new URL(file, dir)), "utf8");
        return [file, { body, type, version: createHash("sha256").update(body).digest("hex").slice(0, 10) }];
      }),
    );
  }
  return loaded.get(name) ?? null;
}

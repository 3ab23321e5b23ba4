import { resolve } from "node:path";
import { ConfigError } from "../errors.js";

/** The scheme that selects the embedded database (PGlite): `pglite:memory` or `pglite:<directory>`. */
export const EMBEDDED_SCHEME = "pglite:";

/** Where an embedded database lives: in memory (gone when the process lets go of it) or in a directory. */
export interface EmbeddedPlace {
  /** The registry's key: one PGlite instance per key in a process. */
  readonly key: string;
  /** The directory (absolute) that holds the database and its lock file, or null in memory. */
  readonly directory: string | null;
}

export function isEmbeddedUrl(url: string): boolean {
  return url.startsWith(EMBEDDED_SCHEME);
}

/**
 * `pglite:memory` → in memory; `pglite:./.skiplock/db` or `pglite:/abs/dir` → that directory, resolved against the
 * working directory so that two spellings of one directory share one instance.
 */
export function parseEmbeddedUrl(url: string): EmbeddedPlace {
  if (!isEmbeddedUrl(url)) throw new ConfigError(`not an embedded database URL: ${JSON.stringify(url)}`);
  const rest = url.slice(EMBEDDED_SCHEME.length);
  if (rest === "memory") return { key: "memory", directory: null };
  if (rest === "" || rest.includes("\0") || /^\/\/[^/]/.test(rest)) {
    throw new ConfigError(
      `malformed embedded database URL ${JSON.stringify(url)}: expected pglite:memory or pglite:<directory> ` +
        "(e.g. pglite:./.skiplock/db)",
    );
  }
  const directory = resolve(rest.startsWith("//") ? rest.slice(2) : rest);
  return { key: `dir:${directory}`, directory };
}

import type { PGlite } from "@electric-sql/pglite";
import type { PglitePgConnection } from "@electric-sql/pglite/node-postgres";
import { EmbeddedDependencyMissingError } from "../errors.js";

export const PGLITE_PACKAGE = "@electric-sql/pglite";

/** What embedded mode uses of the optional package. */
export interface PgliteModules {
  PGlite: typeof PGlite;
  PglitePgConnection: typeof PglitePgConnection;
}

/** How the package is imported; a test passes one that fails, as a machine without the package would. */
export type PgliteImporter = () => Promise<PgliteModules>;

const importPglite: PgliteImporter = async () => {
  // Imported only when a pglite: URL is used: the package is an optional peer dependency.
  const [core, adapter] = await Promise.all([
    import("@electric-sql/pglite"),
    import("@electric-sql/pglite/node-postgres"),
  ]);
  return { PGlite: core.PGlite, PglitePgConnection: adapter.PglitePgConnection };
};

let loaded: Promise<PgliteModules> | null = null;

/**
 * The PGlite modules, imported on first use; EmbeddedDependencyMissingError when the package is not installed.
 * `importer` replaces the import (tests); a failed load is not remembered, so installing the package and trying
 * again works without a restart.
 */
export function loadPglite(importer: PgliteImporter = importPglite): Promise<PgliteModules> {
  if (importer !== importPglite) return importWith(importer);
  loaded ??= importWith(importer).catch((err: unknown) => {
    loaded = null;
    throw err;
  });
  return loaded;
}

async function importWith(importer: PgliteImporter): Promise<PgliteModules> {
  try {
    return await importer();
  } catch (err) {
    const code = (err as { code?: string } | null)?.code;
    if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") {
      throw new EmbeddedDependencyMissingError(PGLITE_PACKAGE, { cause: err });
    }
    throw err;
  }
}

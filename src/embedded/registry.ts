import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { readFile, rename, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { PGlite } from "@electric-sql/pglite";
import type { PglitePgConnection } from "@electric-sql/pglite/node-postgres";
import { Gate } from "./gate.js";
import { loadPglite, PGLITE_PACKAGE, type PgliteModules } from "./load.js";
import { lockDirectory } from "./lock.js";
import { parseEmbeddedUrl, type EmbeddedPlace } from "./url.js";

/** An open embedded database: one PGlite instance, shared by everything in the process that uses its URL. */
// Its types name nothing of the optional package: they reach the published declarations through Store, and must
// hold where the package is not installed.
export interface EmbeddedDatabase {
  readonly place: EmbeddedPlace;
  /** A pg connection (for `new pg.Client({ connection })`) that talks to the instance through its gate. */
  connection(): object;
  /**
   * A connection went back to its pool: if it still holds the session (a transaction left open, as a caller that
   * released its client without COMMIT or ROLLBACK leaves it), that is rolled back, or the whole database would wait
   * for it forever.
   */
  released(connection: unknown): Promise<void>;
}

interface Entry {
  refs: number;
  /** The instance, opened on first use. */
  opened: Promise<EmbeddedDatabase> | null;
}

interface Registry {
  entries: Map<string, Entry>;
  /** Instances being closed, by key: the next instance of a key opens after its close (its directory lock). */
  closing: Map<string, Promise<void>>;
  /** A freshly made, empty in-memory cluster's files: later in-memory instances start from it, skipping initdb. */
  emptyCluster: Promise<Blob> | null;
}

// Process-wide: two copies of this module (sources and build, or a test runner's per-file module graphs) still
// share one instance per database, which is what keeps two PGlite instances off one directory.
const REGISTRY = Symbol.for("skiplock.embedded.registry");
const registry: Registry = ((globalThis as Record<symbol, Registry | undefined>)[REGISTRY] ??= {
  entries: new Map(),
  closing: new Map(),
  emptyCluster: null,
});

/** A share of an embedded database: `open()` it when needed, `release()` it once (the last one closes it). */
export interface EmbeddedRef {
  readonly place: EmbeddedPlace;
  open(): Promise<EmbeddedDatabase>;
  release(): Promise<void>;
}

/**
 * Takes a share of the embedded database at `url` (`pglite:memory` or `pglite:<directory>`). Nothing is opened
 * before `open()`: a client made and closed without a query loads nothing. The instance is closed, and a
 * directory's lock released, when its last share is released; an in-memory database is then gone.
 */
export function acquireEmbedded(url: string): EmbeddedRef {
  const place = parseEmbeddedUrl(url);
  let entry = registry.entries.get(place.key);
  if (!entry) registry.entries.set(place.key, (entry = { refs: 0, opened: null }));
  entry.refs++;
  const held = entry;
  let released = false;
  return {
    place,
    open() {
      if (released) return Promise.reject(new Error("this embedded database share was released"));
      held.opened ??= openDatabase(place);
      return held.opened;
    },
    async release() {
      if (released) return;
      released = true;
      if (--held.refs > 0) return;
      const opened = held.opened;
      held.opened = null;
      if (registry.entries.get(place.key) === held) registry.entries.delete(place.key);
      if (!opened) return;
      const closing = opened.then(
        (db) => closeDatabase(db),
        () => {}, // it never opened: nothing to close
      );
      registry.closing.set(place.key, closing);
      try {
        await closing;
      } finally {
        if (registry.closing.get(place.key) === closing) registry.closing.delete(place.key);
      }
    },
  };
}

const unlocks = new WeakMap<EmbeddedDatabase, () => void>();

async function openDatabase(place: EmbeddedPlace): Promise<EmbeddedDatabase> {
  await registry.closing.get(place.key);
  const modules = await loadPglite();
  let unlock: (() => void) | null = null;
  let pglite: PGlite;
  if (place.directory === null) {
    pglite = await modules.PGlite.create({ loadDataDir: await emptyCluster(modules) });
  } else {
    unlock = lockDirectory(place.directory);
    try {
      pglite = await modules.PGlite.create(join(place.directory, "pgdata"));
    } catch (err) {
      unlock();
      throw err;
    }
  }
  const db = database(place, pglite, modules);
  if (unlock) unlocks.set(db, unlock);
  return db;
}

/**
 * A new, empty cluster's files, as PGlite dumps them. Starting an in-memory instance from them skips initdb: 0.4 s
 * against 1.4–2.2 s for a fresh one (docs/drafts/embedded.md, measured with PGlite 0.5.17), which is most of what a
 * test file on `pglite:memory` waits for before its first test. Kept in this process, and in the system's
 * temporary directory for the next processes (a test runner's one per file), keyed by the installed PGlite.
 */
function emptyCluster(modules: PgliteModules): Promise<Blob> {
  registry.emptyCluster ??= (async () => {
    const cached = cacheFile();
    if (cached) {
      try {
        return new Blob([await readFile(cached)]);
      } catch {
        // Not made yet, or unreadable: make it.
      }
    }
    const first = await modules.PGlite.create();
    let dump: Blob;
    try {
      dump = await first.dumpDataDir("none");
    } finally {
      await first.close();
    }
    if (cached) {
      // Written aside and renamed: a process reading it never sees half a file.
      const aside = `${cached}.${process.pid}`;
      await writeFile(aside, Buffer.from(await dump.arrayBuffer()))
        .then(() => rename(aside, cached))
        .catch(() => unlink(aside).catch(() => {}));
    }
    return dump;
  })().catch((err: unknown) => {
    registry.emptyCluster = null;
    throw err;
  });
  return registry.emptyCluster;
}

/** Where the empty cluster is kept between processes: named after the installed PGlite's path and date. */
function cacheFile(): string | null {
  try {
    const main = fileURLToPath(import.meta.resolve(PGLITE_PACKAGE));
    const key = createHash("sha1")
      .update(`${main}\n${statSync(main).mtimeMs}`)
      .digest("hex")
      .slice(0, 16);
    return join(tmpdir(), `skiplock-pglite-empty-${key}.tar`);
  } catch {
    return null;
  }
}

/** Each open database's PGlite instance, kept out of its public shape (see EmbeddedDatabase). */
const instances = new WeakMap<EmbeddedDatabase, PGlite>();

function database(place: EmbeddedPlace, pglite: PGlite, modules: PgliteModules): EmbeddedDatabase {
  const gate = new Gate(pglite);
  // One session: a statement prepared by one connection exists for all of them (pg skips its Parse then).
  const parsed = {};
  class GatedConnection extends modules.PglitePgConnection {
    override end(): void {
      super.end();
      void gate.abandon(this);
    }
  }
  const db: EmbeddedDatabase = {
    place,
    connection() {
      // The adapter calls `execProtocolStream` on what it is given: here, the gate, on this connection's behalf.
      const via = {
        waitReady: pglite.waitReady,
        execProtocolStream: (message: Uint8Array) => gate.exec(connection, message),
      };
      const connection: PglitePgConnection = new GatedConnection({ pglite: via as unknown as PGlite });
      connection.parsedStatements = parsed;
      return connection;
    },
    released: (connection) => gate.abandon(connection as object),
  };
  instances.set(db, pglite);
  return db;
}

async function closeDatabase(db: EmbeddedDatabase): Promise<void> {
  try {
    await instances.get(db)?.close();
  } finally {
    unlocks.get(db)?.();
  }
}

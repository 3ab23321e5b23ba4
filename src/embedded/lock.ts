import { hostname } from "node:os";
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EmbeddedDatabaseLockedError } from "../errors.js";

/** The lock file in an embedded database's directory: the pid (and host) of the process that holds it. */
export const LOCK_FILE = "skiplock.lock";

/** Whether process `pid` exists on this host (a process of another user counts: EPERM). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}

interface Holder {
  pid: number;
  host: string;
}

function readHolder(path: string): Holder | null {
  try {
    const [pid, host] = readFileSync(path, "utf8").split("\n");
    return { pid: Number(pid), host: host ?? "" };
  } catch {
    return null; // gone meanwhile
  }
}

/**
 * Takes `directory` for this process, creating it if missing: writes the lock file with our pid, refused with
 * EmbeddedDatabaseLockedError while a live process holds it. A lock left by a process that is gone (killed, crashed)
 * is taken over. Returns the release function, which removes the lock file.
 *
 * The file is created exclusively (O_EXCL), so of two processes starting at once one wins. A stale lock is first
 * renamed aside (atomic: only one process can move it) and only then removed, so two processes finding the same
 * stale lock cannot both take the directory.
 */
export function lockDirectory(directory: string): () => void {
  mkdirSync(directory, { recursive: true });
  const path = join(directory, LOCK_FILE);
  const me = `${process.pid}\n${hostname()}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      writeFileSync(path, me, { flag: "wx" });
      return () => {
        if (readFileSync(path, "utf8") === me) unlinkSync(path);
      };
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST") throw err;
    }
    const holder = readHolder(path);
    if (holder === null) continue;
    // Another host's pid cannot be checked from here (a directory on a shared disk): it counts as held.
    const stale = Number.isInteger(holder.pid) && holder.host === hostname() && !alive(holder.pid);
    if (!stale) throw new EmbeddedDatabaseLockedError(directory, holder.pid);
    const aside = `${path}.stale-${process.pid}`;
    try {
      renameSync(path, aside);
    } catch {
      continue; // another process moved it first
    }
    const moved = readHolder(aside);
    if (moved && moved.pid !== holder.pid) {
      // What was moved aside is not the stale lock read above: another process had just taken the directory.
      renameSync(aside, path);
      throw new EmbeddedDatabaseLockedError(directory, moved.pid);
    }
    unlinkSync(aside);
  }
  const holder = readHolder(path);
  throw new EmbeddedDatabaseLockedError(directory, holder?.pid ?? -1);
}

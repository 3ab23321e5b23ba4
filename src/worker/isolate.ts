import { isTransientError } from "../db/errors.js";

/**
 * Writes `items` with `write`. When the write fails with an error that is not about the connection, splits the
 * batch in halves, down to single rows, so that the rows Postgres refuses are found and passed to `refuse` while
 * every other row is written. Halves are written in order, so what committed is always a prefix of `items`.
 */
export async function writeIsolating<T>(
  items: T[],
  write: (batch: T[]) => Promise<void>,
  refuse: (item: T, err: unknown) => Promise<void>,
): Promise<void> {
  try {
    return await write(items);
  } catch (err) {
    if (!isRowError(err)) throw err;
    if (items.length === 1) return refuse(items[0]!, err);
  }
  const half = items.length >>> 1;
  await writeIsolating(items.slice(0, half), write, refuse);
  await writeIsolating(items.slice(half), write, refuse);
}

/**
 * Whether a failed statement may have failed because of what one of its rows carries, so that splitting the batch
 * can find that row. Not for a lost connection or the other errors a retry cures, nor for a statement cancelled by
 * its timeout (the next try, with backoff, may well pass).
 */
function isRowError(err: unknown): boolean {
  return !isTransientError(err) && (err as { code?: unknown } | null)?.code !== "57014";
}

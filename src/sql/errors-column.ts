/*
 * The `errors` column: every failed attempt's { type, message, stack, attempt, workerId, at }, oldest first. Bounded
 * so that a task retried a hundred times stays a small row: the first entry (often the one that explains the rest)
 * and the most recent ones, MAX_STORED_ERRORS in all, each message and stack cut to a length. At the bound an append
 * drops the second entry (jsonb `- 1`), so the first stays and the newest are kept. `error` keeps the last full text.
 */

/** Entries kept: the first failure and the nine most recent. */
export const MAX_STORED_ERRORS = 10;
/** Characters of a message kept in an entry. */
export const STORED_MESSAGE_CHARS = 1000;
/** Characters of a stack kept in an entry (its top frames). */
export const STORED_STACK_CHARS = 2000;

/** SQL for `column` with the jsonb object `entry` appended, bounded as above. */
export function appendError(column: string, entry: string): string {
  return `(CASE WHEN jsonb_array_length(${column}) >= ${MAX_STORED_ERRORS} THEN ${column} - 1 ELSE ${column} END) || ${entry}`;
}

/**
 * SQL for one entry. `stack` is the stored error text, kept only when it has frames (a line after the first): errors
 * that skiplock records without a stack (a lost worker, a refused outcome) are one line.
 */
export function errorEntry(p: {
  type: string;
  message: string;
  text: string;
  attempt: string;
  workerId: string;
}): string {
  return `jsonb_build_object('type', ${p.type}, 'message', left(${p.message}, ${STORED_MESSAGE_CHARS}),
            'stack', CASE WHEN strpos(${p.text}, E'\\n') > 0 THEN left(${p.text}, ${STORED_STACK_CHARS}) END,
            'attempt', ${p.attempt}, 'workerId', ${p.workerId}, 'at', now())`;
}

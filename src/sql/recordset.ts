import type { TaskInsert } from "../task.js";

/** The batch as a JSON array of records keyed as the statement's column list; absent keys are nulls. */
export function toRecordset(specs: TaskInsert[]): string {
  let json = "[";
  for (let i = 0; i < specs.length; i++) {
    const s = specs[i]!;
    // Names and queues are validated identifiers and numbers are finite, so this is valid JSON; args is JSON text.
    json += `${i === 0 ? "" : ","}{"n":${JSON.stringify(s.name)},"a":${s.argsJson},"q":${JSON.stringify(s.queue)}`;
    json += `,"p":${s.priority},"t":${s.timeout}`;
    if (s.maxRetries !== null) json += `,"m":${s.maxRetries}`;
    if (s.runAt !== null) json += `,"r":"${timestampText(s.runAt)}"`;
    if (s.delay !== 0) json += `,"d":${s.delay}`;
    if (s.metaJson !== null) json += `,"x":${s.metaJson}`;
    if (s.uniqueKey !== null) json += `,"k":${JSON.stringify(s.uniqueKey)}`;
    json += "}";
  }
  return json + "]";
}

/**
 * ISO 8601 in UTC, as Postgres reads it. toISOString writes years outside 1–9999 as ±YYYYYY, which Postgres does not
 * read: those get plain digits, and years before 1 (JavaScript's 0 is 1 BC) the " BC" suffix.
 */
function timestampText(d: Date): string {
  const iso = d.toISOString();
  const year = d.getUTCFullYear();
  if (year >= 1 && year <= 9999) return iso;
  const rest = iso.slice(iso.indexOf("-", 1));
  return year < 1 ? `${String(1 - year).padStart(4, "0")}${rest} BC` : `${year}${rest}`;
}

import { Cron } from "croner";
import { DEFAULT_QUEUE, DEFAULT_TIMEOUT, validateSeconds } from "../config.js";
import { InvalidOptionError, InvalidScheduleError, SkiplockError } from "../errors.js";
import { assertKnownKeys } from "../options.js";
import { prepareTask } from "../task.js";
import type { StoredScheduleSpec } from "../sql/schedule-reconcile.js";

/** A task made with defineTask (or a handle on one), as a schedule names it: its `enqueue` carries the argument types. */
export interface ScheduledTaskHandle<A extends unknown[] = unknown[]> {
  readonly name: string;
  readonly options?: { queue?: string; priority?: number; timeout?: number; maxRetries?: number };
  enqueue(...args: A): unknown;
}

/** What a schedule is declared with, whichever way its task is named. */
export interface ScheduleFields {
  /** Unique across the schedules of a schema: it names the schedule in the table, the CLI and the ticks' tasks. */
  name: string;
  /** 5 fields (minute hour day month weekday), or 6 with seconds first; `@daily` and the like too (croner). */
  cron: string;
  /** IANA zone the cron is read in; default "UTC". */
  timezone?: string;
  /** Options of each tick's task; default the definition's own (for a defineTask handle), else the usual defaults. */
  queue?: string;
  priority?: number;
  timeout?: number;
  maxRetries?: number;
  /**
   * Seconds: when no worker ran at a tick (a deploy, an outage), the first worker back enqueues the missed ticks that
   * fall within this many seconds of now, oldest first, each once. Default 0: missed ticks are skipped.
   */
  backfill?: number;
}

/** A schedule: each tick of `cron` enqueues `task` with `args`, once across the cluster. */
export interface Schedule extends ScheduleFields {
  /** A task name, or a defineTask handle (then `new Worker({ schedules })` checks `args` against its parameters). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any handle; CheckedSchedules checks its args.
  task: string | ScheduledTaskHandle<any>;
  /** The task's arguments (JSON); default none. */
  args?: readonly unknown[];
}

/** `schedules` as given, each one naming a handle with `args` that match the handle's parameters. */
export type CheckedSchedules<S extends readonly Schedule[]> = S & {
  [K in keyof S]: S[K] extends { task: ScheduledTaskHandle<infer A> }
    ? ScheduleFields & { task: ScheduledTaskHandle<A>; args?: Readonly<A> }
    : S[K];
};

const SCHEDULE_KEYS = [
  "name",
  "cron",
  "timezone",
  "task",
  "args",
  "queue",
  "priority",
  "timeout",
  "maxRetries",
  "backfill",
] as const satisfies readonly (keyof Schedule)[];

const SCHEDULE_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}$/;

/** A schedule checked, with its cron parsed: what the scheduler runs and the table stores. */
export interface ResolvedSchedule extends StoredScheduleSpec {
  /** The parsed cron, read in `timezone`. */
  pattern: Cron;
}

/** The first tick strictly after `after`, or null when the cron has no further one. */
export function nextTick(s: ResolvedSchedule, after: Date): Date | null {
  return s.pattern.nextRun(after);
}

/** Parses a cron expression read in `timezone` (already checked); throws with croner's reason on a bad one. */
export function parseCron(cron: string, timezone: string): Cron {
  // 5 or 6 fields only: croner's optional seventh (years) is not standard cron. Croner's own DST rules apply (see
  // docs/architecture.md, Schedules).
  return new Cron(cron, { timezone, mode: "5-or-6-parts" });
}

/** True for an IANA time zone name this Node.js knows. */
export function isKnownTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks every declared schedule and returns them resolved; the first bad one is an InvalidScheduleError naming the
 * schedule and the field (a bad cron, an unknown timezone, a task this worker does not run, a name used twice, an
 * option that is not one). `registered` says whether this worker runs a task name.
 */
export function resolveSchedules(
  declared: unknown,
  registered: (task: string) => boolean,
  where = "schedules",
): ResolvedSchedule[] {
  if (!Array.isArray(declared)) throw new InvalidOptionError(where, "expected an array of schedules");
  const seen = new Set<string>();
  return declared.map((d: unknown, i) => {
    const s = resolveSchedule(d, `${where}[${i}]`, registered);
    if (seen.has(s.name)) throw new InvalidScheduleError(JSON.stringify(s.name), "name", "is declared twice");
    seen.add(s.name);
    return s;
  });
}

function resolveSchedule(d: unknown, at: string, registered: (task: string) => boolean): ResolvedSchedule {
  if (d === null || typeof d !== "object" || Array.isArray(d)) {
    throw new InvalidScheduleError(at, "schedule", "must be an object { name, cron, task, ... }");
  }
  const s = d as Schedule;
  if (typeof s.name !== "string" || !SCHEDULE_NAME_RE.test(s.name)) {
    throw new InvalidScheduleError(
      at,
      "name",
      `must be 1-200 letters, digits, '_', '.', ':', '/' or '-', got ${JSON.stringify(s.name)}`,
    );
  }
  const who = JSON.stringify(s.name);
  try {
    assertKnownKeys(`schedule ${who}`, s, SCHEDULE_KEYS);
  } catch (err) {
    const e = err as InvalidOptionError;
    throw new InvalidScheduleError(who, e.option, `is ${e.problem}`);
  }
  const timezone = s.timezone ?? "UTC";
  if (typeof timezone !== "string" || !isKnownTimezone(timezone)) {
    throw new InvalidScheduleError(who, "timezone", `${JSON.stringify(timezone)} is not a known IANA time zone`);
  }
  if (typeof s.cron !== "string" || s.cron.trim() === "") {
    throw new InvalidScheduleError(who, "cron", `must be a cron expression, got ${JSON.stringify(s.cron)}`);
  }
  const cron = s.cron.trim().replace(/\s+/g, " ");
  let pattern: Cron;
  try {
    pattern = parseCron(cron, timezone);
  } catch (err) {
    const reason = (err as Error).message.replace(/^Cron\w*: /, "");
    throw new InvalidScheduleError(who, "cron", `${JSON.stringify(cron)} is not valid: ${reason}`);
  }
  if (pattern.nextRun() === null) {
    throw new InvalidScheduleError(who, "cron", `${JSON.stringify(cron)} never matches a time`);
  }
  const handle = typeof s.task === "string" ? null : s.task;
  const task = handle === null ? s.task : handle?.name;
  if (typeof task !== "string") {
    throw new InvalidScheduleError(who, "task", "must be a task name or a task made with defineTask");
  }
  // A handle from using() carries options a schedule would silently drop: give the definition or the name.
  if (handle !== null && !("handler" in handle)) {
    throw new InvalidScheduleError(
      who,
      "task",
      "a handle from using() is not a task definition: give the defineTask handle (and the schedule's own queue, priority …) or the task's name",
    );
  }
  if (!registered(task)) {
    throw new InvalidScheduleError(who, "task", `${JSON.stringify(task)} is not a task this worker runs`);
  }
  const defaults = handle?.options ?? {};
  let backfill: number;
  let prepared: ReturnType<typeof prepareTask>;
  try {
    backfill = validateSeconds("backfill", s.backfill ?? 0);
    prepared = prepareTask({
      name: task,
      args: s.args ?? [],
      queue: s.queue ?? defaults.queue ?? DEFAULT_QUEUE,
      priority: s.priority ?? defaults.priority ?? 0,
      timeout: s.timeout ?? defaults.timeout ?? DEFAULT_TIMEOUT,
      ...((s.maxRetries ?? defaults.maxRetries) !== undefined
        ? { maxRetries: s.maxRetries ?? defaults.maxRetries }
        : {}),
    });
  } catch (err) {
    if (!(err instanceof SkiplockError)) throw err;
    const field = err instanceof InvalidOptionError ? err.option : "args";
    const problem = err instanceof InvalidOptionError ? err.problem : err.message;
    throw new InvalidScheduleError(who, field, `is invalid: ${problem}`);
  }
  return {
    name: s.name,
    cron,
    timezone,
    task,
    argsJson: prepared.argsJson,
    queue: prepared.queue,
    priority: prepared.priority,
    timeout: prepared.timeout,
    maxRetries: prepared.maxRetries,
    backfill,
    pattern,
  };
}

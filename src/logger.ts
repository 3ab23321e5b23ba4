import { pino, type DestinationStream } from "pino";
import { redactSecrets } from "./config.js";
import { InvalidOptionError } from "./errors.js";

/**
 * The logging surface skiplock needs. A pino logger (yours, with its own transports) can be passed as it is: it is
 * recognized and called pino's way, fields first. Winston and console-like loggers fit with a line of glue.
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /**
   * Whether lines of `level` are written. Optional: without it skiplock assumes they are, and builds its per-task
   * debug lines; with it they cost nothing while debug is off.
   */
  isLevelEnabled?(level: LogLevel): boolean;
}

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Whether `logger` writes lines of `level` (see Logger.isLevelEnabled). */
export function logsAt(logger: Logger, level: LogLevel): boolean {
  return logger.isLevelEnabled ? logger.isLevelEnabled(level) : true;
}

function checkedLevel(level: unknown, what: string): LogLevel {
  if (typeof level === "string" && level in ORDER) return level as LogLevel;
  throw new InvalidOptionError(what, `expected one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(level)}`);
}

/** The level of SKIPLOCK_LOG_LEVEL, or info. */
function envLevel(): LogLevel {
  const l = process.env.SKIPLOCK_LOG_LEVEL;
  return l && l in ORDER ? (l as LogLevel) : "info";
}

export interface PinoLoggerOptions {
  /** Lowest level written; default $SKIPLOCK_LOG_LEVEL or info. */
  level?: LogLevel;
  /** json (default): one JSON object a line; pretty: `12:00:00.000 WARN  message key=value …`, for a terminal. */
  format?: LogFormat;
  /** Where lines go; default stderr. */
  destination?: { write(line: string): unknown };
}

/**
 * skiplock's default logger: pino, one JSON object a line on stderr (`{"level":40,"time":"…","pid":…,
 * "hostname":"…","msg":"…",…fields}`). A password in a URL that reaches a line (in a message, a field, an error's text) is replaced
 * by `***` on the way out, whatever the format.
 */
export function pinoLogger(options: PinoLoggerOptions = {}): Logger {
  const level = options.level === undefined ? envLevel() : checkedLevel(options.level, "level");
  const format = options.format ?? "json";
  if (!LOG_FORMATS.includes(format)) {
    throw new InvalidOptionError("format", `expected one of ${LOG_FORMATS.join(", ")}, got ${JSON.stringify(format)}`);
  }
  const out = options.destination ?? process.stderr;
  const destination: DestinationStream =
    format === "pretty"
      ? { write: (line: string) => void out.write(prettyLine(line)) }
      : { write: (l) => out.write(l) };
  const p = pino(
    {
      level,
      // No `name: "skiplock"`: lines about a task carry the task's name under that key.
      timestamp: pino.stdTimeFunctions.isoTime,
      // Every line, fields and all, is redacted as the text it is written as.
      hooks: { streamWrite: redactSecrets },
    },
    destination,
  );
  return fromPino(p, false);
}

/** The pino-like loggers recognized as such: pino itself, or anything with its shape. */
interface PinoLike {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  isLevelEnabled(level: string): boolean;
  child(bindings: object): unknown;
  levels: { values: Record<string, number> };
}

function isPino(logger: unknown): logger is PinoLike {
  const l = logger as Partial<PinoLike> | null;
  return (
    typeof l?.isLevelEnabled === "function" &&
    typeof l.child === "function" &&
    typeof l.levels === "object" &&
    l.levels !== null &&
    typeof l.levels.values === "object"
  );
}

/**
 * A pino logger as a skiplock Logger: fields first, as pino takes them. Lines to a logger of yours have their
 * secrets redacted before they reach it (`redact`), as its transports are out of skiplock's hands.
 */
function fromPino(p: PinoLike, redact: boolean): Logger {
  const write =
    (level: LogLevel) =>
    (message: string, fields?: Record<string, unknown>): void => {
      if (!p.isLevelEnabled(level)) return;
      if (!redact) return p[level](fields ?? {}, message);
      const text = fields ? JSON.stringify(fields) : undefined;
      const clean = text === undefined ? {} : text === redactSecrets(text) ? fields! : JSON.parse(redactSecrets(text));
      p[level](clean as object, redactSecrets(message));
    };
  return {
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    isLevelEnabled: (level) => p.isLevelEnabled(level),
  };
}

/** The logger to use for a `logger` option: skiplock's default when absent, a pino logger called pino's way. */
export function resolveLogger(logger: Logger | undefined): Logger {
  if (logger === undefined) return pinoLogger();
  if (isPino(logger)) return fromPino(logger, true);
  if (!logger || typeof logger !== "object" || LOG_LEVELS.some((l) => typeof logger[l] !== "function")) {
    throw new InvalidOptionError(
      "logger",
      "expected an object with debug, info, warn and error methods (or a pino logger)",
    );
  }
  return logger;
}

const LEVEL_NAMES: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO ",
  40: "WARN ",
  50: "ERROR",
  60: "FATAL",
};
const OWN_KEYS = new Set(["level", "time", "msg", "pid", "hostname"]);

/** One pino JSON line as `12:00:00.000 WARN  message key=value …` (strings as they are unless they hold a space). */
function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof o.time === "string" ? o.time.slice(11, 23) : "";
  let line = `${time} ${LEVEL_NAMES[o.level as number] ?? String(o.level)} ${String(o.msg ?? "")}`;
  for (const [key, value] of Object.entries(o)) {
    if (OWN_KEYS.has(key)) continue;
    const text = typeof value === "string" && /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
    line += ` ${key}=${text}`;
  }
  return `${line}\n`;
}

/** skiplock's default logger: pinoLogger() at $SKIPLOCK_LOG_LEVEL (or info). */
export function defaultLogger(): Logger {
  return pinoLogger();
}

/**
 * Plain lines like `2026-01-01T00:00:00.000Z skiplock warn Redis unreachable {"url":"…"}` on stderr, without pino.
 * A password in a URL that reaches a line is replaced by `***` on the way out.
 */
export function consoleLogger(level: LogLevel = envLevel()): Logger {
  const min = ORDER[level] ?? ORDER.info;
  const write = (l: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (ORDER[l] < min) return;
    const tail = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : "";
    process.stderr.write(redactSecrets(`${new Date().toISOString()} skiplock ${l} ${message}${tail}\n`));
  };
  return {
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    isLevelEnabled: (l) => ORDER[l] >= min,
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {}, isLevelEnabled: () => false };

import { redactSecrets } from "./config.js";

/** The logging surface skiplock needs; pino, winston and console-like loggers fit with a line of glue. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * Lines like `2026-01-01T00:00:00.000Z skiplock warn Redis unreachable {"url":"…"}` on stderr. A password in a URL
 * that reaches a line (in a message, a field, an error's text) is replaced by `***` on the way out.
 */
export function consoleLogger(level: Level = (process.env.SKIPLOCK_LOG_LEVEL as Level) || "info"): Logger {
  const min = ORDER[level] ?? ORDER.info;
  const write = (l: Level) => (message: string, fields?: Record<string, unknown>) => {
    if (ORDER[l] < min) return;
    const tail = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : "";
    process.stderr.write(redactSecrets(`${new Date().toISOString()} skiplock ${l} ${message}${tail}\n`));
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

import { CommanderError, type Command } from "commander";
import { redactSecrets } from "../config.js";
import { InvalidOptionError } from "../errors.js";

/** API option names that a command's flags spell differently (`maxRetries` is `--retry` on run-worker). */
const optionAliases = new WeakMap<Command, Record<string, string>>();

/** Declares which flag carries each API option of `cmd` whose name is not the flag's camelCase. */
export function aliasOptions(cmd: Command, aliases: Record<string, string>): Command {
  optionAliases.set(cmd, aliases);
  return cmd;
}

/** API option name → flag, for `cmd`: every flag under its camelCase name, plus the declared aliases. */
function flagsOf(cmd: Command | null): Map<string, string> {
  const flags = new Map<string, string>();
  if (!cmd) return flags;
  for (const o of cmd.options) if (o.long) flags.set(o.attributeName(), o.long);
  for (const [option, flag] of Object.entries(optionAliases.get(cmd) ?? {})) flags.set(option, flag);
  return flags;
}

/**
 * The one line that `skiplock: error: ` starts, for any error a command ends with: commander's own (unknown flag,
 * bad number, missing argument), skiplock's typed errors with API option names replaced by the command's flags,
 * and anything else by its message. Never a stack trace, never more than one line, never a password (a driver's
 * message that quoted a URL is redacted too).
 */
export function errorLine(err: unknown, cmd: Command | null): string {
  let line: string;
  if (err instanceof CommanderError) {
    // "option '--retry <n>' argument 'x' is invalid. expected an integer", said as skiplock's own errors say it.
    const bad = /^error: option '(-[^ ']+)[^']*' argument '(.*)' is invalid\. (.*)$/s.exec(err.message);
    line = bad
      ? `invalid option ${bad[1]}: ${bad[3]}, got ${JSON.stringify(bad[2])}`
      : err.message.replace(/^error: /, "");
    line += ` (see skiplock ${cmd && cmd.parent ? `${cmd.name()} ` : ""}--help)`;
  } else if (err instanceof InvalidOptionError) {
    const flags = flagsOf(cmd);
    // camelCase option names in the problem (`twice heartbeatInterval`) become flags too; plain words stay.
    const problem = err.problem.replace(/\b[a-z]+(?:[A-Z][a-z]*)+\b/g, (name) => flags.get(name) ?? name);
    line = `invalid option ${flags.get(err.option) ?? err.option}: ${problem}`;
  } else if (err instanceof Error) {
    line = err.message || err.name;
  } else {
    line = String(err);
  }
  return redactSecrets(line.replace(/\s*\n\s*/g, " ").trim());
}

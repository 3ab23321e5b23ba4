import type { Command } from "commander";
import { SkiplockClient } from "../client.js";
import type { ConnectionOptions } from "../config.js";
import { SkiplockError } from "../errors.js";
import { consoleLogger } from "../logger.js";
import type { ScheduleInfo } from "../sql/schedule-admin.js";

const ACTIONS = ["pause", "resume", "trigger"];

/**
 * `skiplock schedules` lists the stored schedules with their last and next tick; `schedules pause|resume|trigger NAME`
 * steers one. `cmd` is the command with its connection flags; `connection` turns the flags into client options.
 */
export function addSchedulesCommand(
  cmd: Command,
  connection: (flags: Record<string, unknown>) => ConnectionOptions,
): Command {
  return cmd
    .description("list the schedules, or pause, resume or trigger (enqueue once now) one")
    .argument("[action]", `${ACTIONS.join(", ")}; none to list`)
    .argument("[name]", "the schedule's name")
    .option("--json", "list as JSON", false)
    .action(async (action: string | undefined, name: string | undefined, flags: Record<string, unknown>) => {
      if (action !== undefined && !ACTIONS.includes(action)) {
        throw new SkiplockError("INVALID_ARGS", `unknown action ${JSON.stringify(action)}: use ${ACTIONS.join(", ")}`);
      }
      if (action !== undefined && name === undefined) {
        throw new SkiplockError("INVALID_ARGS", `schedules ${action} needs the schedule's name`);
      }
      const client = new SkiplockClient({ ...connection(flags), logger: consoleLogger() });
      try {
        if (action === "trigger") {
          const task = await client.triggerSchedule(name!);
          process.stdout.write(`${JSON.stringify(task, null, 2)}\n`);
        } else if (action === "pause" || action === "resume") {
          const s = await (action === "pause" ? client.pauseSchedule(name!) : client.resumeSchedule(name!));
          process.stdout.write(`schedule ${JSON.stringify(s.name)} ${s.paused ? "paused" : "resumed"}\n`);
        } else {
          const list = await client.listSchedules();
          process.stdout.write(flags.json ? `${JSON.stringify(list, null, 2)}\n` : table(list));
        }
      } finally {
        await client.close();
      }
    });
}

/** One line per schedule under a header, columns padded to their widest cell. */
function table(list: ScheduleInfo[]): string {
  if (list.length === 0) return "no schedules (a worker declaring them stores them when it starts)\n";
  const time = (d: Date | null) => (d ? d.toISOString().replace(/\.000Z$/, "Z") : "-");
  const rows = [
    ["NAME", "CRON", "TIMEZONE", "TASK", "LAST TICK", "NEXT TICK", "STATE"],
    ...list.map((s) => [
      s.name,
      s.cron,
      s.timezone,
      s.task,
      time(s.lastTick),
      time(s.nextTick),
      s.removedAt ? "removed" : s.paused ? "paused" : "active",
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((cell, i) => cell.padEnd(widths[i]!))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

import { InvalidArgumentError, type Command } from "commander";
import type { ListTasksOptions } from "../admin.js";
import { SkiplockClient, type ClientOptions } from "../client.js";
import type { ConnectionOptions } from "../config.js";
import { SkiplockError } from "../errors.js";
import { TASK_STATUSES, type JsonValue, type Task, type TaskStatus } from "../task.js";
import { errorLine } from "./errors.js";

/** What main.ts lends these commands: its connection flags and how it reads them. */
export interface CommandKit {
  withConnection: (cmd: Command, options?: { redis: boolean }) => Command;
  connectionOptions: (flags: { databaseUrl?: string; redisUrl?: string; schema?: string }) => ConnectionOptions;
}

const integer = (value: string): number => {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError("expected an integer");
  return n;
};

const status = (value: string, previous: TaskStatus[] = []): TaskStatus[] => {
  const given = value.split(",").map((s) => s.trim().toUpperCase());
  for (const s of given) {
    if (!(TASK_STATUSES as readonly string[]).includes(s)) {
      throw new InvalidArgumentError(`expected one of ${TASK_STATUSES.join(", ")}`);
    }
  }
  return [...previous, ...(given as TaskStatus[])];
};

/** `--meta key=value`: a top-level meta key and the string it must hold (JSON values as `key:=json`). */
const metaEntry = (value: string, previous: Record<string, JsonValue> = {}): Record<string, JsonValue> => {
  const m = /^([^=:]+)(:?=)(.*)$/s.exec(value);
  if (!m) throw new InvalidArgumentError("expected key=value (a string) or key:=json");
  let v: JsonValue = m[3]!;
  if (m[2] === ":=") {
    try {
      v = JSON.parse(m[3]!) as JsonValue;
    } catch {
      throw new InvalidArgumentError(`the value of ${m[1]}:= is not JSON`);
    }
  }
  return { ...previous, [m[1]!]: v };
};

/** Runs `fn` with a client on the command's connection, closed after. */
async function withClient<T>(
  kit: CommandKit,
  flags: Record<string, unknown>,
  options: ClientOptions,
  fn: (client: SkiplockClient) => Promise<T>,
): Promise<T> {
  const client = new SkiplockClient({
    ...kit.connectionOptions(flags as Parameters<CommandKit["connectionOptions"]>[0]),
    ...options,
  });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/**
 * Applies `act` to every id and prints one line for each: what happened on stdout, why not on stderr. Every id is
 * tried; the exit code is 1 when any failed.
 */
async function eachId(ids: string[], cmd: Command, act: (id: string) => Promise<string>): Promise<void> {
  let failed = false;
  for (const id of ids) {
    try {
      process.stdout.write(`${await act(id)}\n`);
    } catch (err) {
      failed = true;
      const line = errorLine(err, cmd);
      // Skiplock's own errors about a task name it; anything else (a lost connection) is said about this id.
      const about = err instanceof SkiplockError && line.includes(id) ? line : `task ${id}: ${line}`;
      process.stderr.write(`skiplock: error: ${about}\n`);
    }
  }
  if (failed) process.exitCode = 1;
}

/** Refused by `cancel`: a task it found already finished otherwise, or running with no cancel recorded. */
class NotCancelledError extends SkiplockError {
  constructor(task: Task) {
    super(
      "NOT_CANCELLED",
      task.status === "PROGRESS"
        ? `task ${task.id} is running and was not cancelled`
        : `task ${task.id} is already ${task.status}; not cancelled`,
    );
  }
}

const time = (d: Date): string =>
  d
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");

/** What the list's last column says about a task: why it failed, or when it is due. */
function note(t: Task): string {
  if (t.status === "PENDING" && t.runAt.getTime() > Date.now()) return `runs at ${time(t.runAt)}`;
  if (t.status === "PROGRESS" && t.cancelRequested) return "cancel requested";
  if ((t.status === "FAILED" || t.status === "CANCELLED") && t.error) {
    const first = t.error.split("\n", 1)[0]!;
    return first.length > 80 ? `${first.slice(0, 77)}...` : first;
  }
  return "";
}

/** Tasks as aligned columns, one line each. */
export function taskTable(tasks: readonly Task[]): string {
  const header = ["ID", "STATUS", "QUEUE", "NAME", "ATTEMPT", "CREATED", ""];
  const rows = tasks.map((t) => [t.id, t.status, t.queue, t.name, String(t.attempt), time(t.createdAt), note(t)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** `list`, `retry`, `cancel` and `delete`: managing tasks from a shell. */
export function addTaskCommands(program: Command, kit: CommandKit): void {
  kit
    .withConnection(
      program
        .command("list")
        .description("list tasks, newest first, a page at a time")
        .option("--status <status>", "only this status (repeat, or separate with commas, for several)", status)
        .option("--queue <name>", "only this queue")
        .option("--name <task>", "only tasks of this name")
        .option(
          "--meta <key=value>",
          "only tasks whose meta has this top-level key and value (key:=json for JSON; repeat)",
          metaEntry,
        )
        .option("--limit <n>", "tasks per page (1-1000)", integer, 50)
        .option("--after <id>", "the page after this task id (the `next` a page printed)")
        .option("--json", "print { tasks, next } as JSON", false),
      { redis: false },
    )
    .action(async (flags: Record<string, unknown>) => {
      const options: ListTasksOptions = { limit: flags.limit as number };
      if (flags.status !== undefined) options.status = flags.status as TaskStatus[];
      if (flags.queue !== undefined) options.queue = flags.queue as string;
      if (flags.name !== undefined) options.name = flags.name as string;
      if (flags.meta !== undefined) options.meta = flags.meta as Record<string, JsonValue>;
      if (flags.after !== undefined) options.after = flags.after as string;
      const page = await withClient(kit, flags, { redisUrl: null }, (c) => c.listTasks(options));
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(page, null, 2)}\n`);
        return;
      }
      if (page.tasks.length === 0) {
        process.stdout.write(flags.after === undefined ? "no tasks\n" : "no more tasks\n");
        return;
      }
      process.stdout.write(`${taskTable(page.tasks)}\n`);
      if (page.next !== null) process.stdout.write(`more: add --after ${page.next}\n`);
    });

  const idCommand = (name: string, description: string, redis: boolean) =>
    kit.withConnection(program.command(name).description(description).argument("<ids...>", "task ids"), { redis });

  idCommand("retry", "move FAILED or CANCELLED tasks back to PENDING, due now", true).action(
    async (ids: string[], flags: Record<string, unknown>, cmd: Command) => {
      await withClient(kit, flags, {}, (c) =>
        eachId(ids, cmd, async (id) => {
          const t = await c.retryTask(id);
          return `retried ${t.id}: PENDING, due now (attempt ${t.attempt} so far)`;
        }),
      );
    },
  );

  idCommand("cancel", "cancel tasks: a PENDING one at once, a running one when its handler stops", true).action(
    async (ids: string[], flags: Record<string, unknown>, cmd: Command) => {
      await withClient(kit, flags, {}, (c) =>
        eachId(ids, cmd, async (id) => {
          const t = await c.cancelTask(id);
          if (t.status === "CANCELLED") return `cancelled ${t.id}`;
          if (t.status === "PROGRESS" && t.cancelRequested) {
            return `cancel requested for ${t.id}: running; it ends when its handler stops`;
          }
          throw new NotCancelledError(t);
        }),
      );
    },
  );

  idCommand("delete", "delete finished tasks (COMPLETED, FAILED, CANCELLED)", false).action(
    async (ids: string[], flags: Record<string, unknown>, cmd: Command) => {
      await withClient(kit, flags, { redisUrl: null }, (c) =>
        eachId(ids, cmd, async (id) => {
          const t = await c.deleteTask(id);
          return `deleted ${t.id} (${t.status} ${t.name})`;
        }),
      );
    },
  );
}

import { eventsSent, forwardEventsToParent } from "./forward-events.js";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { SkiplockClient } from "../client.js";
import type { ConnectionOptions } from "../config.js";
import { migrate } from "../db/migrate.js";
import { SkiplockError, TaskNotFoundError } from "../errors.js";
import { consoleLogger, LOG_FORMATS, LOG_LEVELS, pinoLogger, type LogFormat, type LogLevel } from "../logger.js";
import { checkMetricsServerOptions, serveMetrics } from "../metrics-server.js";
import { resolveConnection } from "../config.js";
import { readRedisTlsFiles, REDIS_TLS_FILES } from "../redis-tls.js";
import { Worker } from "../worker/worker.js";
import { aliasOptions, errorLine } from "./errors.js";
import { addTaskCommands } from "./task-commands.js";
import { addSchedulesCommand } from "./schedules-command.js";
import { addDashboardCommand } from "./dashboard-command.js";
import { addDevCommand } from "./dev-command.js";
import { packageVersion } from "./version.js";

interface ConnectionFlags {
  databaseUrl?: string;
  redisUrl?: string;
  redisTlsCa?: string;
  redisTlsCert?: string;
  redisTlsKey?: string;
  schema?: string;
  pgbouncer?: boolean;
}

function connectionOptions(flags: ConnectionFlags): ConnectionOptions & { pgbouncer?: boolean } {
  const o: ConnectionOptions & { pgbouncer?: boolean } = {};
  if (flags.pgbouncer !== undefined) o.pgbouncer = flags.pgbouncer;
  if (flags.databaseUrl !== undefined) o.databaseUrl = flags.databaseUrl;
  if (flags.redisUrl !== undefined) o.redisUrl = flags.redisUrl;
  const tlsFiles = { ca: flags.redisTlsCa, cert: flags.redisTlsCert, key: flags.redisTlsKey };
  const tls = readRedisTlsFiles(tlsFiles, (field) => REDIS_TLS_FILES.find((f) => f.field === field)!.flag);
  if (tls) o.redisTls = tls;
  if (flags.schema !== undefined) o.schema = flags.schema;
  return o;
}

/** Connection flags; `--redis-url` only on the commands that use Redis (the others ignore $REDIS_URL too). */
function withConnection(cmd: Command, options: { redis: boolean } = { redis: true }): Command {
  cmd.option("--database-url <url>", "Postgres URL (default: $DATABASE_URL)");
  if (options.redis) {
    cmd.option(
      "--redis-url <url>",
      "Redis URL for wake-ups: redis://, rediss:// (TLS) or redis+sentinel://host:port,…/master " +
        "(default: $REDIS_URL; without it, poll only)",
    );
    cmd.option("--redis-tls-ca <file>", "PEM file of the CA that signed Redis's certificate (default: $REDIS_TLS_CA)");
    cmd.option("--redis-tls-cert <file>", "PEM file of a client certificate for Redis (default: $REDIS_TLS_CERT)");
    cmd.option("--redis-tls-key <file>", "PEM file of that certificate's key (default: $REDIS_TLS_KEY)");
  }
  cmd.option(
    "--pgbouncer",
    "Postgres is reached through PgBouncer in transaction pooling mode (default: $SKIPLOCK_PGBOUNCER)",
  );
  return cmd.option("--schema <name>", "schema holding the tasks table (default: $SKIPLOCK_SCHEMA or skiplock)");
}

const seconds = (value: string): number => {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError("expected seconds (a number >= 0)");
  return n;
};
const days = (value: string): number => {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError("expected days (a number >= 0)");
  return n;
};
const integer = (value: string): number => {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError("expected an integer");
  return n;
};
const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function buildProgram(): Command {
  // Commander's errors are thrown rather than printed (exitOverride), so main() prints every error the same way.
  // Set before the commands are added: they inherit it.
  const program = new Command("skiplock")
    .description("A task queue on Postgres (the tasks) and Redis (the doorbell).")
    .version(packageVersion(), "-V, --version", "print the version")
    .exitOverride()
    .configureOutput({ outputError: () => {} });

  withConnection(program.command("migrate").description("create or update the skiplock schema"), {
    redis: false,
  }).action(async (flags: ConnectionFlags) => {
    const { databaseUrl, schema } = resolveConnection({ ...connectionOptions(flags), redisUrl: null });
    const r = await migrate({ databaseUrl, schema });
    process.stdout.write(
      r.applied.length > 0
        ? `schema "${r.schema}": applied ${r.applied.join(", ")}\n`
        : `schema "${r.schema}" is up to date\n`,
    );
  });

  withConnection(
    aliasOptions(program.command("run-worker"), {
      maxRetries: "--retry",
      tasksModule: "--tasks",
      queues: "--queue",
      port: "--metrics-port",
      host: "--metrics-host",
      token: "--metrics-token",
    })
      .description("claim and run tasks until SIGINT/SIGTERM (or, with --burst or --max-tasks, until done)")
      .requiredOption("--tasks <module>", "JS module exporting the task handlers")
      .option("--concurrency <n>", "tasks run at once", integer, 1)
      .option("--retry <n>", "retries for tasks enqueued without maxRetries", integer, 0)
      .option(
        "--queue <name>",
        "queue to claim from (repeat for several; default: default, plus every queue its defineTask tasks name)",
        collect,
      )
      .option("--poll-interval <s>", "seconds between claims without a wake-up", seconds, 1)
      .option("--heartbeat-interval <s>", "seconds between heartbeats", seconds, 5)
      .option("--stale-after <s>", "seconds without heartbeat before a running task is taken back", seconds, 30)
      .option(
        "--shutdown-timeout <s>",
        "seconds to let running tasks finish on SIGTERM before handing them back",
        seconds,
        30,
      )
      .option("--prefetch <n>", "most claimed tasks held ready beyond the free slots while tasks are short", integer)
      .option(
        "--pool-size <n>",
        "Postgres connections for outcome writes and sweeps (default 4); claims and the heartbeat add one each",
        integer,
      )
      .option(
        "--max-connections <n>",
        "most Postgres connections the worker holds, all included (default pool size + 2); 1 or 2 fold the claim " +
          "and heartbeat connections into the pool",
        integer,
      )
      .option("--cancel-grace <s>", "seconds a cancelled task may take to stop before it is abandoned", seconds, 10)
      .option("--burst", "exit (0) once no task is due: none claimable in its queues and none running", false)
      .option("--max-tasks <n>", "exit (0) after running this many tasks; claims no more than that", integer)
      .option(
        "--ipc-task-events",
        "with an IPC channel, also forward the per-task events (task:*) to the parent",
        false,
      )
      .option("--metrics-port <port>", "serve Prometheus metrics at GET /metrics on this port", integer)
      .option("--metrics-host <host>", "address for --metrics-port; beyond loopback it needs a token", "127.0.0.1")
      .option("--metrics-token <token>", "bearer token scrapes must send (default: $SKIPLOCK_METRICS_TOKEN)")
      .addOption(
        new Option("--log-level <level>", "lowest level logged (default: $SKIPLOCK_LOG_LEVEL or info)").choices(
          LOG_LEVELS,
        ),
      )
      .addOption(
        new Option("--log-format <format>", "json: one object a line; pretty: for a terminal")
          .choices(LOG_FORMATS)
          .default("json"),
      )
      .addOption(
        new Option(
          "--isolation <mode>",
          "inline: run handlers on the main thread; thread: one worker thread per running task, terminated at its timeout",
        )
          .choices(["inline", "thread"])
          .default("inline"),
      ),
  ).action(async (flags: ConnectionFlags & Record<string, unknown>) => {
    const logger = pinoLogger({
      ...(flags.logLevel !== undefined ? { level: flags.logLevel as LogLevel } : {}),
      format: flags.logFormat as LogFormat,
    });
    const metricsToken =
      (flags.metricsToken as string | undefined) ?? (process.env.SKIPLOCK_METRICS_TOKEN || undefined);
    const metricsServer =
      flags.metricsPort === undefined
        ? null
        : {
            port: flags.metricsPort as number,
            host: flags.metricsHost as string,
            ...(metricsToken !== undefined ? { token: metricsToken } : {}),
          };
    // Refused before anything starts: a non-loopback host without a token, a bad port.
    if (metricsServer) checkMetricsServerOptions(metricsServer);
    const worker = new Worker({
      ...connectionOptions(flags),
      tasksModule: flags.tasks as string,
      isolation: flags.isolation as "inline" | "thread",
      concurrency: flags.concurrency as number,
      maxRetries: flags.retry as number,
      ...(flags.queue ? { queues: flags.queue as string[] } : {}),
      pollInterval: flags.pollInterval as number,
      heartbeatInterval: flags.heartbeatInterval as number,
      staleAfter: flags.staleAfter as number,
      shutdownTimeout: flags.shutdownTimeout as number,
      cancelGrace: flags.cancelGrace as number,
      ...(flags.prefetch !== undefined ? { prefetch: flags.prefetch as number } : {}),
      ...(flags.poolSize !== undefined ? { poolSize: flags.poolSize as number } : {}),
      ...(flags.maxConnections !== undefined ? { maxConnections: flags.maxConnections as number } : {}),
      ...(flags.maxTasks !== undefined ? { maxTasks: flags.maxTasks as number } : {}),
      logger,
      metrics: metricsServer !== null,
    });
    forwardEventsToParent(worker, { taskEvents: flags.ipcTaskEvents as boolean });
    // Drain modes end the process once the worker has stopped on its own, as after SIGTERM.
    const ended = new Promise<void>((resolve) => worker.once("worker:stopped", resolve));
    await worker.start();
    if (metricsServer) {
      try {
        const served = await serveMetrics({ ...metricsServer, metrics: () => worker.metrics(), logger });
        logger.info("serving metrics", { url: served.url, auth: metricsServer.token ? "bearer token" : "none" });
      } catch (err) {
        await worker.stop();
        throw new SkiplockError("METRICS_SERVER", `cannot serve metrics: ${(err as Error).message}`);
      }
    }
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn(`second ${signal}: exiting now; running tasks will be swept back to the queue`);
        process.exit(130);
      }
      logger.info(`${signal}: shutting down (send it again to exit at once)`);
      worker.stop().then(
        () => eventsSent().then(() => process.exit(0)),
        (err: Error) => {
          logger.error("shutdown failed", { error: err.message });
          process.exit(1);
        },
      );
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    if (flags.burst) await worker.runUntilIdle();
    else if (flags.maxTasks !== undefined) await ended;
    else await new Promise<never>(() => {}); // runs until a signal
    if (signals === 0) {
      logger.info(flags.burst ? "no task due: exiting (--burst)" : "ran --max-tasks tasks: exiting");
      await eventsSent();
      process.exit(0);
    }
    await new Promise<never>(() => {}); // a signal's shutdown exits
  });

  withConnection(
    program
      .command("enqueue")
      .description("create a task and print it as JSON")
      .argument("<name>", "task name")
      .argument("[args]", "JSON array of arguments", "[]")
      .option("--queue <name>", "queue", "default")
      .option("--priority <n>", "higher runs first", integer, 0)
      .option("--timeout <s>", "seconds an attempt may run", seconds, 300)
      .option("--max-retries <n>", "retries (default: the worker's --retry)", integer)
      .option("--delay <s>", "run no sooner than this many seconds from now", seconds)
      .option("--wait <s>", "wait up to this many seconds for the task to finish and print the final task", seconds),
  ).action(async (name: string, argsText: string, flags: ConnectionFlags & Record<string, unknown>) => {
    let args: unknown;
    try {
      args = JSON.parse(argsText);
    } catch (err) {
      throw new SkiplockError("INVALID_ARGS", `args must be a JSON array: ${(err as Error).message}`);
    }
    if (!Array.isArray(args)) throw new SkiplockError("INVALID_ARGS", "args must be a JSON array, e.g. '[2, 3]'");
    const client = new SkiplockClient({ ...connectionOptions(flags), logger: consoleLogger() });
    try {
      const task = await client.createTask(name, args, {
        queue: flags.queue as string,
        priority: flags.priority as number,
        timeout: flags.timeout as number,
        ...(flags.maxRetries !== undefined ? { maxRetries: flags.maxRetries as number } : {}),
        ...(flags.delay !== undefined ? { delay: flags.delay as number } : {}),
      });
      if (flags.wait === undefined) return print(task);
      const done = await client.waitForCompletion(task.id, { timeout: flags.wait as number });
      if (!done) {
        print(await client.getTask(task.id));
        process.stderr.write(`skiplock: task ${task.id} did not finish within ${String(flags.wait)} s\n`);
        process.exitCode = 2;
        return;
      }
      print(done);
      if (done.status !== "COMPLETED") process.exitCode = 1;
    } finally {
      await client.close();
    }
  });

  withConnection(program.command("status").description("print a task as JSON").argument("<id>", "task id"), {
    redis: false,
  }).action(async (id: string, flags: ConnectionFlags) => {
    const client = new SkiplockClient({ ...connectionOptions(flags), redisUrl: null });
    try {
      const task = await client.getTask(id);
      if (!task) throw new TaskNotFoundError(id);
      print(task);
    } finally {
      await client.close();
    }
  });

  withConnection(
    aliasOptions(program.command("purge"), { olderThanDays: "--days", statuses: "--status" })
      .description("delete finished tasks older than --days, in short batches")
      .requiredOption("--days <n>", "delete tasks that finished more than this many days ago", days)
      .option("--status <status>", "COMPLETED, FAILED or CANCELLED (repeat; default: all three)", collect)
      .option("--batch-size <n>", "rows read per step, each its own short transaction", integer, 10_000)
      .option("--dry-run", "count what would be deleted, delete nothing", false),
    { redis: false },
  ).action(async (flags: ConnectionFlags & Record<string, unknown>) => {
    const client = new SkiplockClient({ ...connectionOptions(flags), redisUrl: null });
    try {
      const statuses = (flags.status as string[] | undefined)?.map((st) => st.toUpperCase());
      const r = await client.purgeTasks({
        olderThanDays: flags.days as number,
        ...(statuses ? { statuses: statuses as ("COMPLETED" | "FAILED" | "CANCELLED")[] } : {}),
        batchSize: flags.batchSize as number,
        dryRun: flags.dryRun as boolean,
      });
      process.stdout.write(
        r.dryRun
          ? `would delete ${r.deleted} tasks (scanned ${r.scanned}); nothing deleted (--dry-run)\n`
          : `deleted ${r.deleted} tasks (scanned ${r.scanned})\n`,
      );
    } finally {
      await client.close();
    }
  });

  addTaskCommands(program, { withConnection, connectionOptions });
  addSchedulesCommand(withConnection(program.command("schedules")), connectionOptions);
  addDashboardCommand(withConnection(program.command("dashboard")), connectionOptions);
  addDevCommand(program.command("dev"));

  return program;
}

/** The subcommand `argv` names (its first word after the script), if any. */
function commandOf(program: Command, argv: string[]): Command | null {
  const word = argv.slice(2).find((a) => !a.startsWith("-"));
  return program.commands.find((c) => c.name() === word) ?? null;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // --help and --version end here too, having printed what they print; so does a bare `skiplock` (help on stderr).
    if (
      err instanceof CommanderError &&
      ["commander.helpDisplayed", "commander.version", "commander.help"].includes(err.code)
    ) {
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(`skiplock: error: ${errorLine(err, commandOf(program, argv))}\n`);
    process.exitCode = 1;
  }
}

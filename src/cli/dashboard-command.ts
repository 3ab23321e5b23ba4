import { createServer } from "node:http";
import { InvalidArgumentError, type Command } from "commander";
import { SkiplockClient } from "../client.js";
import type { ConnectionOptions } from "../config.js";
import { createDashboard } from "../dashboard/create-dashboard.js";
import { isLoopbackHost } from "../dashboard/guard.js";
import { SkiplockError } from "../errors.js";
import { aliasOptions } from "./errors.js";
import { consoleLogger } from "../logger.js";
import { createTaskRunner, type RunnerSettings } from "../runner/run-due.js";
import { loadTasksModule, tasksModuleUrl } from "../worker/tasks-module.js";

const port = (value: string): number => {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > 65535) throw new InvalidArgumentError("expected a port (0 to 65535)");
  return n;
};

const seconds = (value: string): number => {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError("expected seconds (a number >= 0)");
  }
  return n;
};

const count = (value: string): number => {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError("expected an integer >= 0");
  return n;
};

/**
 * `skiplock dashboard`: serves the dashboard and its JSON API until SIGINT/SIGTERM. Without a token it serves only on
 * a loopback address; a non-loopback --host without one is refused before anything listens.
 */
export function addDashboardCommand(
  cmd: Command,
  connection: (flags: Record<string, unknown>) => ConnectionOptions,
): Command {
  // The runner's option names as this command's flags spell them, for error lines.
  return aliasOptions(cmd, { maxRetries: "--retry", tasksModule: "--tasks" })
    .description("serve the dashboard and its JSON API (bound to 127.0.0.1 unless --host says otherwise)")
    .option("--port <n>", "port to listen on", port, 4680)
    .option("--host <address>", "address to listen on; anything but loopback needs a token", "127.0.0.1")
    .option(
      "--token <token>",
      "secret for API calls and signing in (prefer $SKIPLOCK_DASHBOARD_TOKEN: flags show in ps)",
    )
    .option("--read-only", "refuse every action (retry, cancel, delete, run now, purge, enqueue, schedules)", false)
    .option("--base-path <path>", "path to serve under, e.g. /admin behind a proxy", "/")
    .option(
      "--metrics-token <token>",
      "a separate token for scraping <base>/metrics (prefer $SKIPLOCK_METRICS_TOKEN); the dashboard's token works too",
    )
    .option(
      "--tasks <module>",
      "JS module exporting the task handlers: enables POST api/run, api/run-one, api/execute/:id",
    )
    .option("--retry <n>", "with --tasks: retries for tasks enqueued without maxRetries", count, 0)
    .option(
      "--heartbeat-interval <s>",
      "with --tasks: seconds between heartbeats of the tasks a request runs",
      seconds,
      5,
    )
    .option(
      "--stale-after <s>",
      "with --tasks: your workers' --stale-after (api/run sweeps lost tasks with it)",
      seconds,
      30,
    )
    .action(async (flags: Record<string, unknown>) => {
      const token = (flags.token as string | undefined) || process.env.SKIPLOCK_DASHBOARD_TOKEN || undefined;
      const host = flags.host as string;
      if (token === undefined && !isLoopbackHost(host)) {
        throw new SkiplockError(
          "INVALID_ARGS",
          `refusing to serve on ${host} without a token: set SKIPLOCK_DASHBOARD_TOKEN (or --token), or keep --host 127.0.0.1`,
        );
      }
      const metricsToken =
        (flags.metricsToken as string | undefined) || process.env.SKIPLOCK_METRICS_TOKEN || undefined;
      const logger = consoleLogger();
      const client = new SkiplockClient({ ...connection(flags), logger });
      const trigger = flags.tasks === undefined ? {} : await triggerOptions(client, flags);
      const dashboard = createDashboard({
        ...trigger,
        client,
        ...(token !== undefined ? { token } : {}),
        ...(metricsToken !== undefined ? { metricsToken } : {}),
        readOnly: flags.readOnly as boolean,
        basePath: flags.basePath as string,
        logger,
      });
      const server = createServer(dashboard.listener);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(flags.port as number, host, resolve);
      });
      const address = server.address();
      const actualPort = typeof address === "object" && address ? address.port : (flags.port as number);
      const shownHost = host.includes(":") ? `[${host}]` : host;
      const path = dashboard.basePath === "/" ? "/" : `${dashboard.basePath}/`;
      process.stdout.write(`skiplock dashboard: http://${shownHost}:${actualPort}${path}\n`);
      const stop = (signal: NodeJS.Signals) => {
        logger.info(`${signal}: stopping the dashboard`);
        server.close();
        server.closeAllConnections();
        void dashboard
          .close()
          .then(() => client.close())
          .then(() => process.exit(0));
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      await new Promise<never>(() => {}); // serves until a signal
    });
}

/**
 * The tasks module, loaded now as run-worker loads it (a module that fails to load is one clear line before anything
 * listens), and the runner's settings, checked now too.
 */
async function triggerOptions(
  client: SkiplockClient,
  flags: Record<string, unknown>,
): Promise<{ tasks: Awaited<ReturnType<typeof loadTasksModule>>; tasksModule: string; runOptions: RunnerSettings }> {
  const tasksModule = flags.tasks as string;
  const tasks = await loadTasksModule(tasksModuleUrl(tasksModule));
  const runOptions: RunnerSettings = {
    maxRetries: flags.retry as number,
    heartbeatInterval: flags.heartbeatInterval as number,
    staleAfter: flags.staleAfter as number,
  };
  // Throws InvalidOptionError for a bad map or setting; the runner made here opens nothing.
  await createTaskRunner({ client, tasks, tasksModule, settings: runOptions, logger: client.logger }).close();
  return { tasks, tasksModule, runOptions };
}

import { createServer } from "node:http";
import { InvalidArgumentError, type Command } from "commander";
import { setDefaultClient, SkiplockClient } from "../client.js";
import { validateSchemaName, DEFAULT_SCHEMA } from "../config.js";
import { createDashboard } from "../dashboard/create-dashboard.js";
import { EMBEDDED_SCHEME } from "../embedded/url.js";
import { pinoLogger } from "../logger.js";
import { Worker } from "../worker/worker.js";

const port = (value: string): number => {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > 65535) throw new InvalidArgumentError("expected a port (0 to 65535)");
  return n;
};
const integer = (value: string): number => {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError("expected an integer");
  return n;
};

/**
 * `skiplock dev`: the embedded database, a worker for a tasks module and the dashboard in one process, for trying
 * things out and for local development; nothing to install or start beside it. The database is a directory
 * (`--db`, kept between runs) or `memory`. DATABASE_URL is set to it before the tasks module loads, and the module-
 * level functions (`createTask`…) use the command's client: code in this process enqueues to the same database.
 */
export function addDevCommand(cmd: Command): Command {
  return cmd
    .description("run a worker, the dashboard and an embedded database (PGlite) together, for development")
    .requiredOption("--tasks <module>", "JS module exporting the task handlers")
    .option("--db <dir>", "directory of the embedded database, or 'memory'", "./.skiplock/db")
    .option("--port <n>", "dashboard port on 127.0.0.1 (0: any free port)", port, 4680)
    .option("--concurrency <n>", "tasks run at once", integer, 2)
    .option("--retry <n>", "retries for tasks enqueued without maxRetries", integer, 0)
    .option("--schema <name>", "schema holding the tasks table", DEFAULT_SCHEMA)
    .action(async (flags: Record<string, unknown>) => {
      const databaseUrl = `${EMBEDDED_SCHEME}${flags.db as string}`;
      const schema = validateSchemaName(flags.schema);
      process.env.DATABASE_URL = databaseUrl;
      process.env.SKIPLOCK_SCHEMA = schema;
      const logger = pinoLogger({ format: "pretty" });
      const client = new SkiplockClient({ databaseUrl, schema, logger });
      setDefaultClient(client);
      const worker = new Worker({
        databaseUrl,
        schema,
        tasksModule: flags.tasks as string,
        concurrency: flags.concurrency as number,
        maxRetries: flags.retry as number,
        logger,
      });
      const server = createServer(createDashboard({ client, logger }).listener);
      try {
        await client.migrate();
        await worker.start();
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen(flags.port as number, "127.0.0.1", resolve);
        });
      } catch (err) {
        await worker.stop();
        await client.close();
        throw err;
      }
      const address = server.address();
      const actualPort = typeof address === "object" && address ? address.port : (flags.port as number);
      process.stdout.write(`skiplock dev: dashboard at http://127.0.0.1:${actualPort}/ (database ${databaseUrl})\n`);
      let stopping = false;
      const stop = (signal: NodeJS.Signals) => {
        if (stopping) process.exit(130);
        stopping = true;
        logger.info(`${signal}: stopping (send it again to exit at once)`);
        server.close();
        server.closeAllConnections();
        worker
          .stop()
          .then(() => client.close())
          .then(
            () => process.exit(0),
            (err: Error) => {
              logger.error("shutdown failed", { error: err.message });
              process.exit(1);
            },
          );
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
      await new Promise<never>(() => {}); // runs until a signal
    });
}

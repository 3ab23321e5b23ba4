// The demo: enqueues tasks, prints their results, and stops the worker. Run it with `npm run demo` (after `npm ci`).
//
// Without DATABASE_URL it needs no server at all: the database is embedded (PGlite, `pglite:memory`), with its
// in-process doorbell, and the worker runs in this process, as `skiplock run-worker --concurrency 2 --retry 1` would.
// With DATABASE_URL (and REDIS_URL) it migrates a schema there, starts `skiplock run-worker` as a child process,
// and stops it with SIGTERM at the end.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { SkiplockClient, Worker, migrate, pinoLogger } from "skiplock";
import { wordCount } from "./tasks.js";

const embedded = !process.env.DATABASE_URL;
const databaseUrl = process.env.DATABASE_URL || "pglite:memory";
const redisUrl = embedded ? undefined : (process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const schema = process.env.SKIPLOCK_SCHEMA ?? "skiplock_demo";
const cli = fileURLToPath(new URL("../dist/bin/skiplock.js", import.meta.url));
const tasksModule = fileURLToPath(new URL("./tasks.js", import.meta.url));

// The client first: on the embedded database, its share keeps the in-memory database alive for the whole demo.
const client = new SkiplockClient({ databaseUrl, ...(redisUrl ? { redisUrl } : { redisUrl: null }), schema });
const applied = embedded ? await client.migrate() : await migrate({ databaseUrl, schema });
console.log(
  `schema "${schema}" ready${embedded ? " (embedded database, pglite:memory)" : ""}` +
    `${applied.applied.length ? ` (applied ${applied.applied.join(", ")})` : ""}`,
);

/** Starts the worker; resolves with its stop function, which resolves with a line saying how it stopped. */
async function startWorker() {
  if (embedded) {
    console.log("starting: a Worker in this process (concurrency 2, retry 1, tasks examples/tasks.js)");
    const logger = pinoLogger({ format: "pretty", destination: process.stdout });
    const worker = new Worker({ databaseUrl, schema, concurrency: 2, maxRetries: 1, tasksModule, logger });
    await worker.start();
    return async () => {
      await worker.stop();
      return "worker stopped";
    };
  }
  console.log("starting: skiplock run-worker --concurrency 2 --retry 1 --tasks examples/tasks.js");
  const child = spawn(
    process.execPath,
    [cli, "run-worker", "--concurrency", "2", "--retry", "1", "--tasks", tasksModule],
    {
      env: { ...process.env, DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, SKIPLOCK_SCHEMA: schema },
      stdio: ["ignore", "inherit", "inherit"],
    },
  );
  const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  return async () => {
    child.kill("SIGTERM");
    return `worker stopped (exit code ${await exited})`;
  };
}

const stopWorker = await startWorker();
try {
  const tasks = [
    await client.createTask("multiply", [6, 7]),
    await client.createTask("flaky", ["retry-demo"]),
    await client.createTask("slowHello", ["delayed world", 100], { delay: 1 }),
    await wordCount.using({ client }).enqueue("Postgres keeps the tasks, Redis rings the bell"),
    ...(await client.createTasks([1, 2, 3].map((n) => ({ name: "multiply", args: [n, n] })))),
  ];
  console.log(`enqueued ${tasks.length} tasks: ${tasks.map((t) => `${t.name}#${t.id}`).join(", ")}`);
  for (const task of tasks) {
    const done = await client.waitForCompletion(task.id, { timeout: 30 });
    if (!done) throw new Error(`task ${task.id} did not finish in 30 s`);
    const tail = done.status === "COMPLETED" ? `result ${JSON.stringify(done.result)}` : `error ${done.error}`;
    console.log(
      `${done.name}(${done.args.map((a) => JSON.stringify(a)).join(", ")}) -> ${done.status}, ${tail}` +
        ` (attempts ${done.attempt}, ${(done.duration ?? 0).toFixed(3)} s)`,
    );
  }
} finally {
  const stopped = await stopWorker();
  await client.close();
  console.log(stopped);
}

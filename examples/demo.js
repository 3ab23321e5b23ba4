// The demo: migrates a schema, starts `skiplock run-worker` as a child process, enqueues tasks and prints their
// results, then stops the worker with SIGTERM. Run it with `npm run demo` (after `npm ci`).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { SkiplockClient, migrate } from "skiplock";
import { wordCount } from "./tasks.js";

const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const schema = process.env.SKIPLOCK_SCHEMA ?? "skiplock_demo";
const cli = fileURLToPath(new URL("../dist/bin/skiplock.js", import.meta.url));
const tasksModule = fileURLToPath(new URL("./tasks.js", import.meta.url));

const applied = await migrate({ databaseUrl, schema });
console.log(`schema "${schema}" ready${applied.applied.length ? ` (applied ${applied.applied.join(", ")})` : ""}`);

console.log("starting: skiplock run-worker --concurrency 2 --retry 1 --tasks examples/tasks.js");
const worker = spawn(
  process.execPath,
  [cli, "run-worker", "--concurrency", "2", "--retry", "1", "--tasks", tasksModule],
  {
    env: { ...process.env, DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, SKIPLOCK_SCHEMA: schema },
    stdio: ["ignore", "inherit", "inherit"],
  },
);
const workerExit = new Promise((resolve) => worker.on("exit", (code) => resolve(code)));

const client = new SkiplockClient({ databaseUrl, redisUrl, schema });
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
  await client.close();
  worker.kill("SIGTERM");
  const code = await workerExit;
  console.log(`worker stopped (exit code ${code})`);
}

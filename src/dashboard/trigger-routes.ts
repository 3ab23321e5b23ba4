import { Hono, type Context } from "hono";
import type { TaskRunner } from "../runner/run-due.js";
import { validateTaskId } from "../task.js";
import { json, refuse } from "./responses.js";

/** What the trigger routes need: the runner, loaded on first use; null when the dashboard was given no tasks. */
export interface TriggerContext {
  runner: (() => Promise<TaskRunner>) | null;
}

/**
 * Trigger calls a dashboard runs at once: each holds a heartbeat connection (and a thread) while its tasks run, so
 * calls beyond this are refused (503 TOO_MANY_RUNS) rather than left to take connections without bound.
 */
export const MAX_TRIGGER_CALLS = 4;

/** A whole-number query parameter, or undefined when absent. */
function integerParam(url: URL, name: string): number | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === "") return undefined;
  if (!/^\d{1,9}$/.test(v)) throw refuse(400, "INVALID_OPTION", `invalid option ${name}: expected a whole number`);
  return Number(v);
}

/** A number of seconds, or undefined when absent. */
function secondsParam(url: URL, name: string): number | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === "") return undefined;
  if (!/^\d{1,6}(\.\d{1,6})?$/.test(v)) throw refuse(400, "INVALID_OPTION", `invalid option ${name}: expected seconds`);
  return Number(v);
}

/** `queue`, repeated or comma-separated; the runner validates each name. Undefined: the runner's own queues. */
function queuesParam(url: URL): string[] | undefined {
  const queues = url.searchParams
    .getAll("queue")
    .flatMap((q) => q.split(","))
    .filter((q) => q !== "");
  return queues.length > 0 ? queues : undefined;
}

/**
 * The trigger endpoints, for hosts without a long-running worker (a cron job calling a URL, a serverless function):
 * each claims and runs due tasks inside the request, as a worker would, and answers once their outcomes are written.
 * They are actions: the API's guard (token, CSRF, Origin, read-only) applies as to every POST. Without tasks they are
 * not routes at all (404). At most MAX_TRIGGER_CALLS run at once; one more answers 503 TOO_MANY_RUNS.
 *
 * - `POST api/run?max=N&budget=S&queue=Q&concurrency=C`: sweeps lost workers' tasks, then runs up to N due tasks
 *   (default 1), claiming none after S seconds (default 10, at most 900);
 * - `POST api/run-one?queue=Q`: the same with N = 1;
 * - `POST api/execute/:id?queue=Q`: claims that task if it is PENDING (due or not) and runs it; 409 when it is not
 *   PENDING or has no handler here (NO_HANDLER: it stays PENDING), 404 when there is no such task, 400 when it is
 *   not on the queues `run` claims from (or on Q).
 */
export function triggerRoutes(ctx: TriggerContext): Hono {
  const app = new Hono();
  const runner = ctx.runner;
  if (runner === null) return app;
  // Counted around each handler: a middleware here would reach every API route once this app is mounted.
  let running = 0;
  const bounded =
    (handler: (c: Context, get: () => Promise<TaskRunner>) => Promise<Response>) =>
    async (c: Context): Promise<Response> => {
      if (running >= MAX_TRIGGER_CALLS) {
        throw refuse(
          503,
          "TOO_MANY_RUNS",
          `${MAX_TRIGGER_CALLS} trigger calls are running on this dashboard already: try again once one has answered`,
        );
      }
      running++;
      try {
        return await handler(c, runner);
      } finally {
        running--;
      }
    };

  app.post(
    "/run",
    bounded(async (c, get) => {
      const url = new URL(c.req.url);
      const queues = queuesParam(url);
      const max = integerParam(url, "max");
      const budget = secondsParam(url, "budget");
      const concurrency = integerParam(url, "concurrency");
      const runner = await get();
      return json(
        await runner.runDue({
          ...(max !== undefined ? { max } : {}),
          ...(budget !== undefined ? { budget } : {}),
          ...(concurrency !== undefined ? { concurrency } : {}),
          ...(queues !== undefined ? { queues } : {}),
        }),
      );
    }),
  );

  app.post(
    "/run-one",
    bounded(async (c, get) => {
      const queues = queuesParam(new URL(c.req.url));
      const runner = await get();
      return json(await runner.runDue({ max: 1, ...(queues !== undefined ? { queues } : {}) }));
    }),
  );

  app.post(
    "/execute/:id",
    bounded(async (c, get) => {
      const id = validateTaskId(c.req.param("id"));
      const queues = queuesParam(new URL(c.req.url));
      const runner = await get();
      return json(await runner.execute(id, queues !== undefined ? { queues } : {}));
    }),
  );

  return app;
}

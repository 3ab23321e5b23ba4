import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { SkiplockClient } from "../client.js";
import { InvalidOptionError } from "../errors.js";
import type { Logger } from "../logger.js";
import { assertKnownKeys } from "../options.js";
import type { RunnerSettings, TaskRunner } from "../runner/run-due.js";
import type { WorkerEvents } from "../worker/events.js";
import type { TaskMap } from "../worker/registry.js";
import { Credentials } from "./auth.js";
import { errorResponse } from "./responses.js";
import { withSecurityHeaders } from "./security-headers.js";

export interface DashboardOptions {
  /** The client the dashboard reads and acts through; default one from the environment, closed by `close()`. */
  client?: SkiplockClient;
  /**
   * The secret API calls send as `Authorization: Bearer <token>` and browsers sign in with (16 characters or more).
   * Without one there is no sign-in: whoever may reach the dashboard may read and act. It then answers only requests
   * addressed to a loopback host (localhost, 127.0.0.1, ::1), and through `listener` only connections whose address
   * is loopback too. The `fetch` handler cannot see the connection and checks only the Host header, which a client
   * writes itself: served through it on an address other machines reach, or behind a proxy (whose connections are
   * local), the dashboard needs a token.
   */
  token?: string;
  /** Refuse every action (403) and say so in api/stats. */
  readOnly?: boolean;
  /** The path the dashboard is served under, as the browser sees it: `/` (default) or `/admin`. */
  basePath?: string;
  /**
   * Origins besides the request's own that may send state-changing requests signed in by cookie: the public origin
   * when a proxy terminates TLS (`https://ops.example.com`).
   */
  allowedOrigins?: readonly string[];
  /** Mark the session cookie Secure: `"auto"` (default) when the request came over https. */
  secureCookie?: boolean | "auto";
  /**
   * A token Prometheus sends to scrape `<basePath>/metrics` (8 characters or more), so the scraper never holds the
   * dashboard's token; the dashboard's token is accepted there too.
   */
  metricsToken?: string;
  /** Default: the client's. */
  logger?: Logger;
  /**
   * The handlers a worker's tasks module gives (`{ name: fn }`, `{ key: defineTask(…) }`, or an array of
   * definitions), as `new Worker({ tasks })` takes them. With them (or `tasksModule`) the trigger endpoints exist:
   * `POST api/run`, `api/run-one` and `api/execute/:id` claim and run due tasks inside the request.
   */
  tasks?: TaskMap;
  /** A module exporting the handlers (as `run-worker --tasks`), resolved from the working directory. */
  tasksModule?: string;
  /**
   * How the trigger endpoints run tasks, with a worker's defaults: `maxRetries`, `heartbeatInterval`, `staleAfter`
   * (use your workers' value: a `run` call sweeps lost tasks with it), `cancelGrace`, `retryBackoff`,
   * `maxResultBytes`, `isolation`.
   */
  runOptions?: RunnerSettings;
}

const OPTION_KEYS = [
  "client",
  "token",
  "readOnly",
  "basePath",
  "allowedOrigins",
  "secureCookie",
  "metricsToken",
  "logger",
  "tasks",
  "tasksModule",
  "runOptions",
] as const satisfies readonly (keyof DashboardOptions)[];

export const MIN_TOKEN_LENGTH = 16;

export interface Dashboard {
  /**
   * A web-standard handler: for Hono, Bun, Deno, or any server built on Request and Response. It cannot see the
   * connection: without a token it checks only the Host header, so off loopback give the dashboard a token.
   */
  fetch(request: Request): Promise<Response>;
  /**
   * A Node `(req, res)` listener for `http.createServer` or Express (`app.use(dashboard.listener)` or
   * `app.use("/admin", dashboard.listener)` with basePath "/admin"). In Express, requests outside the base path go
   * to `next`.
   */
  listener(req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  /** The normalized base path: `/` or `/admin`. */
  readonly basePath: string;
  /**
   * The worker events of the tasks the trigger endpoints run (`task:started`, `task:completed`, `task:failed`,
   * `task:retrying`, `task:cancelled`, `task:progress`, `task:swept`, `worker:error`…), as a Worker emits them.
   */
  readonly events: EventEmitter<WorkerEvents>;
  /** Closes the client the dashboard made (one given in the options is left open) and the trigger runner's threads. */
  close(): Promise<void>;
}

/** `/`, or the path without its trailing slash; every segment plain. */
function normalizeBasePath(value: unknown): string {
  if (value === undefined) return "/";
  if (typeof value !== "string" || !/^\/([A-Za-z0-9._~-]+\/?)*$/.test(value) || /(^|\/)\.\.?(\/|$)/.test(value)) {
    throw new InvalidOptionError("basePath", "expected a path such as / or /admin (letters, digits, . _ ~ -)");
  }
  return value.length > 1 ? value.replace(/\/$/, "") : value;
}

function checkOptions(o: DashboardOptions): void {
  assertKnownKeys("createDashboard", o, OPTION_KEYS);
  if (o.client !== undefined && !(o.client instanceof SkiplockClient)) {
    throw new InvalidOptionError("client", "expected a SkiplockClient");
  }
  // The token itself never goes into a message.
  if (
    o.token !== undefined &&
    (typeof o.token !== "string" || o.token.length < MIN_TOKEN_LENGTH || /\s/.test(o.token))
  ) {
    throw new InvalidOptionError(
      "token",
      `expected a string of ${MIN_TOKEN_LENGTH} characters or more, without spaces`,
    );
  }
  if (
    o.metricsToken !== undefined &&
    (typeof o.metricsToken !== "string" || o.metricsToken.length < 8 || /\s/.test(o.metricsToken))
  ) {
    throw new InvalidOptionError("metricsToken", "expected a string of 8 characters or more, without spaces");
  }
  if (o.readOnly !== undefined && typeof o.readOnly !== "boolean") {
    throw new InvalidOptionError("readOnly", "expected true or false");
  }
  if (o.secureCookie !== undefined && typeof o.secureCookie !== "boolean" && o.secureCookie !== "auto") {
    throw new InvalidOptionError("secureCookie", 'expected true, false or "auto"');
  }
  if (o.tasks !== undefined && (o.tasks === null || typeof o.tasks !== "object")) {
    throw new InvalidOptionError(
      "tasks",
      "expected { name: handler }, { key: defineTask(…) } or an array of definitions",
    );
  }
  if (o.tasksModule !== undefined && (typeof o.tasksModule !== "string" || o.tasksModule === "")) {
    throw new InvalidOptionError("tasksModule", "expected the path of a module exporting task handlers");
  }
  const origins = o.allowedOrigins ?? [];
  if (!Array.isArray(origins) || origins.some((x) => typeof x !== "string" || !/^https?:\/\/[^/\s]+$/.test(x))) {
    throw new InvalidOptionError("allowedOrigins", "expected origins such as https://ops.example.com (no path)");
  }
}

/**
 * The runner behind the trigger endpoints, loaded on their first call (a dashboard without `tasks` never loads it);
 * null without tasks. Its events are emitted on `events`; a listener that throws is logged, the task goes on.
 */
function triggerRunner(
  o: DashboardOptions,
  client: SkiplockClient,
  logger: Logger,
  events: EventEmitter<WorkerEvents>,
): { get: () => Promise<TaskRunner>; close: () => Promise<void> } | null {
  if (o.tasks === undefined && o.tasksModule === undefined) return null;
  let runner: Promise<TaskRunner> | null = null;
  const get = () =>
    (runner ??= import("../runner/run-due.js").then((m) =>
      m.createTaskRunner({
        client,
        logger,
        ...(o.tasks !== undefined ? { tasks: o.tasks } : {}),
        ...(o.tasksModule !== undefined ? { tasksModule: o.tasksModule } : {}),
        ...(o.runOptions !== undefined ? { settings: o.runOptions } : {}),
        signal: (name, ...args) => void (events.emit as (n: string, ...a: unknown[]) => boolean)(name, ...args),
        listening: (name) => events.listenerCount(name) > 0,
      }),
    )).catch((err: unknown) => {
      runner = null; // a bad tasks map is reported at each call, not cached
      throw err;
    });
  return {
    get,
    close: async () => {
      const r = runner;
      runner = null;
      if (r) await (await r.catch(() => null))?.close();
    },
  };
}

/**
 * The dashboard's server: its pages under `<basePath>`, the JSON API under `<basePath>/api` and the database gauges at
 * `<basePath>/metrics`, as a web-standard `fetch` handler and a Node listener. The README's "Dashboard and JSON API"
 * says how to mount it and run it safely.
 */
export function createDashboard(options: DashboardOptions = {}): Dashboard {
  checkOptions(options);
  const basePath = normalizeBasePath(options.basePath);
  const ownClient = options.client === undefined;
  const client = options.client ?? new SkiplockClient();
  const logger = options.logger ?? client.logger;
  const credentials = options.token === undefined ? null : new Credentials(options.token);
  if (credentials === null) {
    logger.warn(
      "dashboard without a token: no sign-in, anyone who reaches it may read and act. It answers only requests " +
        "addressed to localhost, 127.0.0.1 or ::1 and, through the Node listener, from a loopback address; the " +
        "fetch handler checks only the Host header, and a proxy's connections are local: off this machine, give a token",
    );
  }

  const events = new EventEmitter<WorkerEvents>();
  const runner = triggerRunner(options, client, logger, events);
  const ctx = {
    client,
    runner: runner?.get ?? null,
    credentials,
    guard: { credentials, readOnly: options.readOnly ?? false, allowedOrigins: options.allowedOrigins ?? [] },
    cookiePath: basePath,
    secureCookie: options.secureCookie ?? "auto",
    metricsCredentials: options.metricsToken === undefined ? null : new Credentials(options.metricsToken),
    logger,
  };
  // The router and the Node adapter load on the first request: importing skiplock (every worker does) stays light.
  let router: Promise<{ fetch: (r: Request) => Response | Promise<Response> }> | null = null;
  const fetch = async (request: Request): Promise<Response> => {
    let res: Response;
    try {
      router ??= import("./router.js").then((m) => m.buildRouter(basePath, ctx));
      res = await (await router).fetch(request);
    } catch (err) {
      res = errorResponse(err, logger);
    }
    return withSecurityHeaders(res);
  };

  let nodeListener: Promise<(req: IncomingMessage, res: ServerResponse) => Promise<void>> | null = null;
  const under = (path: string) => basePath === "/" || path === basePath || path.startsWith(`${basePath}/`);
  const listener = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    // Express strips its mount path from req.url and keeps the whole path in originalUrl.
    const original = (req as { originalUrl?: unknown }).originalUrl;
    if (typeof original === "string") req.url = original;
    if (next && !under(new URL(req.url ?? "/", "http://x").pathname)) return next();
    // Told not to replace the global Request and Response, which the adapter does by default.
    // Each request is marked with its connection's address, which the guard checks when there is no token.
    nodeListener ??= Promise.all([import("@hono/node-server"), import("./guard.js")]).then(([m, g]) =>
      m.getRequestListener(
        (request: Request, env: { incoming: { socket?: { remoteAddress?: string } } }) => {
          g.markPeer(request, env.incoming.socket?.remoteAddress);
          return fetch(request);
        },
        { overrideGlobalObjects: false },
      ),
    );
    void nodeListener
      .then((handle) => handle(req, res))
      .catch((err: unknown) => {
        logger.error("dashboard request failed", { error: err instanceof Error ? err.message : String(err) });
        if (!res.headersSent) res.writeHead(500).end();
      });
  };

  return {
    fetch,
    listener,
    basePath,
    events,
    close: async () => {
      await runner?.close();
      if (ownClient) await client.close();
    },
  };
}

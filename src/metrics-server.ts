import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { isIP } from "node:net";
import { InvalidOptionError } from "./errors.js";
import type { Logger } from "./logger.js";

export interface MetricsServerOptions {
  /** The Prometheus text to serve (`() => worker.metrics()`). */
  metrics: () => Promise<string>;
  /** TCP port; 0 picks a free one (see `port` of the result). */
  port: number;
  /** Address to listen on; default 127.0.0.1. Any other than a loopback address needs a `token`. */
  host?: string;
  /** When given, a scrape must send `Authorization: Bearer <token>`. */
  token?: string;
  logger?: Logger;
}

export interface MetricsServer {
  /** The port listened on. */
  readonly port: number;
  /** `http://host:port/metrics`. */
  readonly url: string;
  close(): Promise<void>;
}

const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Whether `host` names this machine only: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1" || h === "::ffff:127.0.0.1") return true;
  return isIP(h) === 4 && h.startsWith("127.");
}

/** Checks the options before anything listens: a non-loopback host without a token is refused. */
export function checkMetricsServerOptions(o: Omit<MetricsServerOptions, "metrics">): void {
  checked({ ...o, metrics: () => Promise.resolve("") });
}

function checked(o: MetricsServerOptions): Required<Omit<MetricsServerOptions, "token" | "logger">> & {
  token: string | null;
} {
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
    throw new InvalidOptionError("port", `expected a TCP port (0 to 65535), got ${JSON.stringify(o.port)}`);
  }
  const host = o.host ?? "127.0.0.1";
  if (typeof host !== "string" || host === "") throw new InvalidOptionError("host", "expected a host name or address");
  const token = o.token ?? null;
  if (token !== null && (typeof token !== "string" || token.length < 8)) {
    throw new InvalidOptionError("token", "expected a string of at least 8 characters");
  }
  if (token === null && !isLoopback(host)) {
    throw new InvalidOptionError(
      "host",
      `${host} is not a loopback address: metrics served beyond this machine need a token (--metrics-token or SKIPLOCK_METRICS_TOKEN)`,
    );
  }
  return { metrics: o.metrics, port: o.port, host, token };
}

/** Compares in constant time whatever the lengths (both sides are hashed to 32 bytes first). */
function sameToken(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Serves `GET /metrics` in Prometheus text format, on a loopback address unless told otherwise (then only with a
 * bearer token). Nothing else is served: other paths get 404, other methods 405.
 */
export async function serveMetrics(options: MetricsServerOptions): Promise<MetricsServer> {
  const o = checked(options);
  const expected = o.token === null ? null : `Bearer ${o.token}`;
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (path !== "/metrics") return end(res, 404, "not found\n");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("Allow", "GET, HEAD");
      return end(res, 405, "method not allowed\n");
    }
    if (expected !== null && !sameToken(req.headers.authorization ?? "", expected)) {
      res.setHeader("WWW-Authenticate", 'Bearer realm="skiplock metrics"');
      return end(res, 401, "unauthorized\n");
    }
    o.metrics().then(
      (text) => {
        res.setHeader("Content-Type", CONTENT_TYPE);
        end(res, 200, req.method === "HEAD" ? "" : text);
      },
      (err: Error) => {
        options.logger?.error("metrics scrape failed", { error: err.message });
        end(res, 500, "metrics unavailable\n");
      },
    );
  };
  const server = createServer(handle);
  return new Promise<MetricsServer>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => {
      server.off("error", reject);
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : o.port;
      const shown = o.host.includes(":") ? `[${o.host}]` : o.host;
      resolve({
        port,
        url: `http://${shown}:${port}/metrics`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

function end(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  if (!res.hasHeader("Content-Type")) res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(body);
}

// The dashboard's answers to requests that try its edges: a spoofed Host from another machine, streams nobody
// reads, actions on a task that changed since the page showed it, redirects out of the base path, and the trigger
// endpoints' limits.
import { Agent, request as httpRequest, createServer, type Server } from "node:http";
import { networkInterfaces } from "node:os";
import { afterEach, describe, expect, it } from "vitest";
import { createDashboard } from "../src/index.js";
import { clientInternals } from "../src/client.js";
import { DashboardEvents, MAX_STREAMS } from "../src/dashboard/events.js";
import { guard, isLoopbackAddress, markPeer } from "../src/dashboard/guard.js";
import { TOKEN } from "./dashboard-fixture.js";
import { quiet, waitFor } from "./helpers.js";
import { schemaFixture } from "./schema-fixture.js";

const env = schemaFixture({ label: "dashboard_review" });

let server: Server | null = null;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = null;
});

/** Serves `handler` on every interface; resolves to the port. */
async function listenAll(handler: Parameters<typeof createServer>[1]): Promise<number> {
  server = createServer(handler);
  await new Promise<void>((resolve) => server!.listen(0, "0.0.0.0", resolve));
  return (server.address() as { port: number }).port;
}

/** A GET to `address`:`port` with its own Host header: the status and body. */
function getWithHost(
  address: string,
  port: number,
  host: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<[number, string]> {
  return new Promise((resolve, reject) => {
    const rq = httpRequest({ host: address, port, path, headers: { host, ...headers } }, (r) => {
      let body = "";
      r.on("data", (c: Buffer) => (body += c.toString()));
      r.on("end", () => resolve([r.statusCode!, body]));
    });
    rq.on("error", reject);
    rq.end();
  });
}

/** This machine's first IPv4 address other machines could reach it at, or null. */
function outsideAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return null;
}

describe("without a token, a request from another machine", () => {
  const guardOptions = { credentials: null, readOnly: false, allowedOrigins: [] };

  it("is refused even when its Host names localhost (the listener marks each request with its socket's address)", () => {
    const spoofed = new Request("http://localhost:4680/api/stats");
    markPeer(spoofed, "192.0.2.7");
    expect(() => guard(spoofed, guardOptions, "api")).toThrow(/connections from this machine/);
    for (const local of ["127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"]) {
      const r = new Request("http://localhost:4680/api/stats");
      markPeer(r, local);
      expect(guard(r, guardOptions, "api")).toBe("none");
    }
    expect(isLoopbackAddress(undefined)).toBe(false);
    expect(isLoopbackAddress("::ffff:10.0.0.1")).toBe(false);
    expect(isLoopbackAddress("128.0.0.1")).toBe(false);
    // The fetch handler sees no socket: the Host check alone applies (documented: off loopback, give a token).
    expect(guard(new Request("http://localhost:4680/api/stats"), guardOptions, "api")).toBe("none");
  });

  it("gets 403 through the Node listener on 0.0.0.0, with Host: localhost", async (t) => {
    const address = outsideAddress();
    if (address === null) return t.skip();
    const d = createDashboard({ client: env.client, logger: quiet });
    const port = await listenAll(d.listener);
    const [spoofed, body] = await getWithHost(address, port, `localhost:${port}`, "/api/stats");
    expect(spoofed).toBe(403);
    expect(JSON.parse(body).error.code).toBe("LOOPBACK_ONLY");
    const [local] = await getWithHost("127.0.0.1", port, `localhost:${port}`, "/api/stats");
    expect(local).toBe(200);
  });

  it("is served with a token (the token, not the address, is the check)", async (t) => {
    const address = outsideAddress();
    if (address === null) return t.skip();
    const d = createDashboard({ client: env.client, logger: quiet, token: TOKEN });
    const port = await listenAll(d.listener);
    const [status] = await getWithHost(address, port, `${address}:${port}`, "/api/stats", {
      authorization: `Bearer ${TOKEN}`,
    });
    expect(status).toBe(200);
  });
});

/** A request to 127.0.0.1:`port` through `agent`; resolves to the status once the headers (and a HEAD's end) came. */
function ask(port: number, method: string, path: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const rq = httpRequest({ host: "127.0.0.1", port, path, method, agent }, (r) => {
      if (method === "HEAD" || r.statusCode !== 200) {
        r.resume();
        r.on("end", () => resolve(r.statusCode!));
      } else {
        r.once("data", () => {
          resolve(r.statusCode!);
          rq.destroy();
        });
      }
    });
    rq.on("error", reject);
    rq.end();
  });
}

describe("api/events", () => {
  it("answers HEAD with the headers alone: a hundred HEADs leave room for a GET's stream", async () => {
    const d = createDashboard({ client: env.client, logger: quiet });
    const port = await listenAll(d.listener);
    const agent = new Agent({ keepAlive: true, maxSockets: 4 });
    try {
      const heads = await Promise.all(
        Array.from({ length: MAX_STREAMS + 10 }, () => ask(port, "HEAD", "/api/events", agent)),
      );
      expect(new Set(heads)).toEqual(new Set([200]));
      expect(await ask(port, "GET", "/api/events", agent)).toBe(200);
    } finally {
      agent.destroy();
    }
  });

  it("drops a stream whose first event nobody reads, and keeps one that is read", async () => {
    const events = new DashboardEvents({
      notifier: clientInternals(env.client).notifier,
      logger: quiet,
      queues: async () => [],
      maxStreams: 2,
      unreadMs: 100,
    });
    const never = new AbortController();
    const reader = events.stream(never.signal).body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("event: hello");
    events.stream(never.signal); // never read
    expect(events.open).toBe(2);
    // The unread one's timer runs out after the read one's: once it is dropped, the read one's has been judged.
    await waitFor("the unread stream to be dropped", () => events.open === 1);
    expect(() => events.stream(never.signal)).not.toThrow();
    expect(events.open).toBe(2);
    events.closeAll();
    expect(events.open).toBe(0);
    await reader.cancel();
  });
});

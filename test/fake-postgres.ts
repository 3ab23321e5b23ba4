import { createServer, type Server, type Socket } from "node:net";
import { freePort } from "./helpers.js";

/**
 * A server that speaks just enough of the Postgres protocol to refuse a login, for the failures the suite's own
 * Postgres (trust authentication) cannot produce:
 * - "scram": asks for a SCRAM-SHA-256 password, sends its first SCRAM message, and then waits, as a real server
 *   waits for the client's proof until its authentication_timeout (60 s). A client without a password cannot
 *   compute one.
 * - "wrong-password": answers the login with FATAL 28P01, as a server does for a wrong password, and hangs up.
 */
export class FakePostgres {
  port = 0;
  /** Connections a client opened and has not closed yet. */
  readonly open = new Set<Socket>();
  #server: Server | null = null;

  constructor(readonly answer: "scram" | "wrong-password") {}

  /** A database URL for this server, with `userinfo` (e.g. `app` or `app:secret`). */
  url(userinfo = "app"): string {
    return `postgres://${userinfo}@127.0.0.1:${this.port}/app`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    this.#server = createServer((socket) => {
      this.open.add(socket);
      socket.on("close", () => this.open.delete(socket));
      socket.on("error", () => {});
      let received = 0;
      socket.on("data", () => {
        received++;
        // The first message is the startup packet; whatever it says, refuse.
        if (this.answer === "scram") {
          if (received === 1)
            socket.write(message("R", Buffer.concat([int32(10), cstring("SCRAM-SHA-256"), Buffer.from([0])])));
          // The client's first SCRAM message: answer with the server's (its content does not matter here).
          if (received === 2)
            socket.write(message("R", Buffer.concat([int32(11), Buffer.from("r=abc,s=c2FsdA==,i=4096")])));
        } else if (received === 1) {
          const fields = [
            ["S", "FATAL"],
            ["V", "FATAL"],
            ["C", "28P01"],
            ["M", 'password authentication failed for user "app"'],
          ].map(([k, v]) => Buffer.concat([Buffer.from(k!), cstring(v!)]));
          socket.end(message("E", Buffer.concat([...fields, Buffer.from([0])])));
        }
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(this.port, "127.0.0.1", resolve));
  }

  async stop(): Promise<void> {
    for (const s of this.open) s.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function cstring(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, "utf8"), Buffer.from([0])]);
}

function message(type: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
}

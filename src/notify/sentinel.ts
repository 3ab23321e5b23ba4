import { createClient } from "redis";
import type { RedisTarget } from "./redis-target.js";
import type { RedisTlsOptions } from "./redis-tls.js";

export interface RedisAddress {
  host: string;
  port: number;
}

/** How long one sentinel may take to answer before the next is asked. */
const SENTINEL_TIMEOUT_MS = 2000;

/** Where the next search starts: a sentinel that is down costs one timeout per search, not one per sentinel listed before it. */
let nextSentinel = 0;

/**
 * The master's address as the sentinels know it: each is asked in turn (SENTINEL GET-MASTER-ADDR-BY-NAME) until one
 * answers. Throws when none does, or none knows the name. A short-lived connection per question: a search happens
 * only when a connection to the master is opened.
 */
export async function findMaster(
  target: Extract<RedisTarget, { kind: "sentinel" }>,
  tls: RedisTlsOptions | undefined,
): Promise<RedisAddress> {
  const errors: string[] = [];
  const n = target.sentinels.length;
  const start = nextSentinel++ % n;
  for (let i = 0; i < n; i++) {
    const s = target.sentinels[(start + i) % n]!;
    const client = createClient({
      ...(target.sentinelUsername !== undefined && { username: target.sentinelUsername }),
      ...(target.sentinelPassword !== undefined && { password: target.sentinelPassword }),
      RESP: 2,
      disableOfflineQueue: true,
      commandOptions: { timeout: SENTINEL_TIMEOUT_MS },
      socket: {
        host: s.host,
        port: s.port,
        connectTimeout: SENTINEL_TIMEOUT_MS,
        reconnectStrategy: false,
        ...(target.tls ? { tls: true as const, ...tls } : {}),
      },
    });
    client.on("error", () => {}); // reported below, as this sentinel's failure
    client.unref();
    try {
      await client.connect();
      const reply = (await client.sendCommand(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", target.masterName])) as
        [string, string] | null;
      if (!reply) {
        errors.push(`${s.host}:${s.port} knows no master named ${JSON.stringify(target.masterName)}`);
        continue;
      }
      nextSentinel = (start + i) % n; // it answered: ask it first next time
      return { host: reply[0], port: Number(reply[1]) };
    } catch (err) {
      errors.push(`${s.host}:${s.port}: ${(err as Error).message}`);
    } finally {
      try {
        if (client.isReady) await client.close();
        else if (client.isOpen) client.destroy();
      } catch {
        // already closed
      }
    }
  }
  throw new Error(`no Redis Sentinel gave the master's address (${errors.join("; ")})`);
}

/** Whether the server `client` is connected to is a master (ROLE), not a replica the sentinels' answer predates. */
export async function isMaster(client: { sendCommand: (args: string[]) => Promise<unknown> }): Promise<boolean> {
  const role = (await client.sendCommand(["ROLE"])) as unknown[];
  return role[0] === "master";
}

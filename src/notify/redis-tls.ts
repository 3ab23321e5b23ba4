import { readFileSync } from "node:fs";
import { RedisConfigError } from "../errors.js";
import { parseRedisTarget } from "./redis-target.js";

/** TLS settings for a rediss:// or rediss+sentinel:// URL, as Node's `tls.connect` takes them. */
export interface RedisTlsOptions {
  /** PEM of the CA(s) to trust instead of the system's (a private CA). */
  ca?: string | Buffer | (string | Buffer)[];
  /** PEM of a client certificate, for servers that ask for one (`tls-auth-clients`). */
  cert?: string | Buffer;
  /** PEM of the client certificate's private key. */
  key?: string | Buffer;
  /** Default true: refuse a server whose certificate does not check out. */
  rejectUnauthorized?: boolean;
  /** The name the server's certificate must carry, when it is not the host connected to. */
  servername?: string;
}

/** The environment variables holding the paths of the PEM files, and the flags that set them on the CLI. */
export const REDIS_TLS_FILES = [
  { field: "ca", env: "REDIS_TLS_CA", flag: "--redis-tls-ca" },
  { field: "cert", env: "REDIS_TLS_CERT", flag: "--redis-tls-cert" },
  { field: "key", env: "REDIS_TLS_KEY", flag: "--redis-tls-key" },
] as const;

/** Reads PEM files named by paths (`source(field)` names where each path came from, for the error). */
export function readRedisTlsFiles(
  paths: Partial<Record<"ca" | "cert" | "key", string>>,
  source: (field: "ca" | "cert" | "key") => string,
): RedisTlsOptions | undefined {
  const tls: RedisTlsOptions = {};
  let any = false;
  for (const { field } of REDIS_TLS_FILES) {
    const path = paths[field];
    if (!path) continue;
    try {
      tls[field] = readFileSync(path, "utf8");
    } catch (err) {
      throw new RedisConfigError(
        `cannot read the Redis TLS file ${path} (${source(field)}): ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    any = true;
  }
  return any ? tls : undefined;
}

/**
 * The TLS settings for `url`: `options` when given, else the files REDIS_TLS_CA / REDIS_TLS_CERT / REDIS_TLS_KEY name.
 * Settings with a URL that does not use TLS are refused: they would be silently ignored, and the traffic sent in clear.
 */
export function resolveRedisTls(
  url: string,
  options: RedisTlsOptions | undefined,
  env: NodeJS.ProcessEnv,
): RedisTlsOptions | undefined {
  const tls =
    options ??
    readRedisTlsFiles(Object.fromEntries(REDIS_TLS_FILES.map((f) => [f.field, env[f.env]])), (field) => {
      return `$${REDIS_TLS_FILES.find((f) => f.field === field)!.env}`;
    });
  if (tls === undefined) return undefined;
  if (typeof tls !== "object" || tls === null || Array.isArray(tls)) {
    throw new RedisConfigError("redisTls must be an object: { ca, cert, key, rejectUnauthorized, servername }");
  }
  const known = new Set(["ca", "cert", "key", "rejectUnauthorized", "servername"]);
  for (const k of Object.keys(tls)) {
    if (!known.has(k))
      throw new RedisConfigError(`redisTls: unknown field ${JSON.stringify(k)} (known: ${[...known].join(", ")})`);
  }
  if (!parseRedisTarget(url).tls) {
    throw new RedisConfigError(
      "Redis TLS settings were given for a URL without TLS: use rediss:// (or rediss+sentinel://), or drop the settings",
    );
  }
  return tls;
}

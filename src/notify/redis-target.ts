import { RedisConfigError } from "../errors.js";

/**
 * Where the doorbell's connections go, read from the Redis URL:
 *
 *   redis://[[user]:password@]host[:port][/db]          one server (rediss:// over TLS)
 *   redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/master-name[/db][?sentinelUsername=…&sentinelPassword=…]
 *                                                        the master a group of Redis Sentinels names (rediss+sentinel://
 *                                                        over TLS, to the sentinels and the servers alike)
 *
 * A sentinel's port defaults to 26379. The user and password are the servers'; the sentinels', when they have their
 * own, go in the query. One string, so REDIS_URL and --redis-url carry a sentinel setup as they carry a server.
 */
export type RedisTarget =
  | { kind: "server"; url: string; tls: boolean }
  | {
      kind: "sentinel";
      url: string;
      tls: boolean;
      masterName: string;
      sentinels: { host: string; port: number }[];
      username?: string;
      password?: string;
      db?: number;
      sentinelUsername?: string;
      sentinelPassword?: string;
    };

const SENTINEL_PORT = 26379;
const SENTINEL_FORM = "redis+sentinel://[user:password@]host:port[,host:port…]/master-name[/db]";

/** Parses and checks a Redis URL (throwing RedisConfigError, which never shows the password). */
export function parseRedisTarget(url: unknown): RedisTarget {
  if (typeof url !== "string" || url === "") throw new RedisConfigError("empty Redis URL");
  const scheme = /^([a-z+]+):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === "redis+sentinel" || scheme === "rediss+sentinel")
    return parseSentinel(url, scheme === "rediss+sentinel");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RedisConfigError(`malformed Redis URL (${shown(url)}): expected redis://host:port or ${SENTINEL_FORM}`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new RedisConfigError(
      `Redis URL must start with redis://, rediss://, redis+sentinel:// or rediss+sentinel://, got ${parsed.protocol}//`,
    );
  }
  return { kind: "server", url, tls: parsed.protocol === "rediss:" };
}

function parseSentinel(url: string, tls: boolean): RedisTarget {
  const rest = url.slice(url.indexOf("://") + 3);
  const hashAt = rest.indexOf("#");
  const noHash = hashAt === -1 ? rest : rest.slice(0, hashAt);
  const q = noHash.indexOf("?");
  const beforeQuery = q === -1 ? noHash : noHash.slice(0, q);
  const query = new URLSearchParams(q === -1 ? "" : noHash.slice(q + 1));
  const slash = beforeQuery.indexOf("/");
  const authority = slash === -1 ? beforeQuery : beforeQuery.slice(0, slash);
  const path = slash === -1 ? "" : beforeQuery.slice(slash + 1);
  const at = authority.lastIndexOf("@");
  const userinfo = at === -1 ? null : authority.slice(0, at);
  const hosts = at === -1 ? authority : authority.slice(at + 1);

  if (hosts.trim() === "")
    throw new RedisConfigError(`Redis Sentinel URL names no sentinel: expected ${SENTINEL_FORM}`);
  const sentinels = hosts.split(",").map((h) => parseHostPort(h.trim()));
  const [masterName, db, ...extra] = path.split("/").filter((s) => s !== "");
  if (!masterName) throw new RedisConfigError(`Redis Sentinel URL names no master: expected ${SENTINEL_FORM}`);
  if (extra.length > 0) throw new RedisConfigError(`Redis Sentinel URL has a path beyond /master-name/db`);
  const target: Extract<RedisTarget, { kind: "sentinel" }> = {
    kind: "sentinel",
    url,
    tls,
    masterName: decode(masterName, "master name"),
    sentinels,
  };
  if (db !== undefined) {
    if (!/^\d+$/.test(db))
      throw new RedisConfigError(`Redis Sentinel URL: database ${JSON.stringify(db)} is not a number`);
    target.db = Number(db);
  }
  if (userinfo !== null) {
    const colon = userinfo.indexOf(":");
    const user = colon === -1 ? userinfo : userinfo.slice(0, colon);
    if (user) target.username = decode(user, "user name");
    if (colon !== -1) target.password = decode(userinfo.slice(colon + 1), "password");
  }
  for (const key of query.keys()) {
    if (key !== "sentinelUsername" && key !== "sentinelPassword") {
      throw new RedisConfigError(
        `Redis Sentinel URL: unknown parameter ${JSON.stringify(key)} (known: sentinelUsername, sentinelPassword)`,
      );
    }
  }
  const su = query.get("sentinelUsername");
  const sp = query.get("sentinelPassword");
  if (su) target.sentinelUsername = su;
  if (sp) target.sentinelPassword = sp;
  return target;
}

function parseHostPort(text: string): { host: string; port: number } {
  // [::1]:26379, host:26379, host
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]/]+)(?::(\d*))?$/.exec(text);
  if (!m) throw new RedisConfigError(`Redis Sentinel URL: malformed sentinel address ${JSON.stringify(text)}`);
  const host = m[1]!.startsWith("[") ? m[1]!.slice(1, -1) : m[1]!;
  const port = m[2] ? Number(m[2]) : SENTINEL_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RedisConfigError(`Redis Sentinel URL: port ${m[2]} of ${host} is out of range`);
  }
  return { host, port };
}

function decode(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new RedisConfigError(`Redis Sentinel URL: malformed percent-encoding in the ${what}`);
  }
}

/** A URL for an error message: scheme and hosts only. */
function shown(url: string): string {
  const m = /^([^:]*:\/\/)(?:[^@/]*@)?([^/?#]*)/.exec(url);
  return m ? `${m[1]}${m[2]}` : "not a URL";
}

import { isEmbeddedUrl, parseEmbeddedUrl } from "../embedded/url.js";
import type { Logger } from "../logger.js";
import { InProcessNotifier } from "./in-process.js";
import { NullNotifier, type Notifier } from "./notifier.js";
import { RedisNotifier } from "./redis.js";
import type { RedisTlsOptions } from "./redis-tls.js";

export { channels, NullNotifier, type Notifier, type WakeListener } from "./notifier.js";
export { InProcessNotifier } from "./in-process.js";
export { RedisNotifier } from "./redis.js";
export { publishWakes, type EnqueuedTask } from "./wakes.js";
export { parseRedisTarget, type RedisTarget } from "./redis-target.js";
export type { RedisTlsOptions } from "./redis-tls.js";

/** The Redis doorbell when a URL is configured, otherwise the null one (polling only). */
export function createNotifier(options: {
  redisUrl: string | undefined;
  /** With a `pglite:` URL (the embedded database, one process), the in-process doorbell, whatever redisUrl says. */
  databaseUrl?: string;
  /** TLS settings for a rediss:// or rediss+sentinel:// URL. */
  tls?: RedisTlsOptions | undefined;
  schema: string;
  logger: Logger;
  unref?: boolean;
  pingInterval?: number;
}): Notifier {
  if (options.databaseUrl !== undefined && isEmbeddedUrl(options.databaseUrl)) {
    if (options.redisUrl) {
      options.logger.debug("embedded database: the doorbell is in-process, REDIS_URL is not used", {
        schema: options.schema,
      });
    }
    return new InProcessNotifier({ database: parseEmbeddedUrl(options.databaseUrl).key, schema: options.schema });
  }
  if (!options.redisUrl) return new NullNotifier();
  return new RedisNotifier({
    url: options.redisUrl,
    tls: options.tls,
    schema: options.schema,
    logger: options.logger,
    unref: options.unref ?? false,
    ...(options.pingInterval !== undefined ? { pingInterval: options.pingInterval } : {}),
  });
}

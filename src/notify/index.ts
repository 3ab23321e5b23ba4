import type { Logger } from "../logger.js";
import { NullNotifier, type Notifier } from "./notifier.js";
import { RedisNotifier } from "./redis.js";

export { channels, NullNotifier, type Notifier, type WakeListener } from "./notifier.js";
export { RedisNotifier } from "./redis.js";
export { publishWakes, type EnqueuedTask } from "./wakes.js";

/** The Redis doorbell when a URL is configured, otherwise the null one (polling only). */
export function createNotifier(options: {
  redisUrl: string | undefined;
  schema: string;
  logger: Logger;
  unref?: boolean;
  pingInterval?: number;
}): Notifier {
  if (!options.redisUrl) return new NullNotifier();
  return new RedisNotifier({
    url: options.redisUrl,
    schema: options.schema,
    logger: options.logger,
    unref: options.unref ?? false,
    ...(options.pingInterval !== undefined ? { pingInterval: options.pingInterval } : {}),
  });
}

/*
 * Wake tokens: how a wake-up wakes about as many workers as there are new tasks, not every idle worker.
 *
 * Each queue has a counter in Redis (and one per announced due time). Announcing `count` tasks adds `count` to it and
 * publishes the wake-up in one script (one round trip, and the counter is up before any worker hears the message),
 * unless the count reaches the number of workers subscribed. A worker that hears it
 * with free slots takes up to that many tokens (as many as it would claim) and claims only if it got one; the others
 * wait for the next wake-up or their poll. A worker whose claim returns more rows of a queue than it took tokens for
 * spends the difference, so tokens left by tasks that busy workers claimed later do not let idle workers claim in vain.
 * See docs/architecture.md, "Wake-ups that do not stampede".
 */

/**
 * How long tokens outlive the last announcement of their queue. They are taken within milliseconds of it; what is
 * left after that (tasks claimed by workers without Redis, tokens of a claim that found the task gone) would only let
 * the next wake-up through to more workers than it needs.
 */
export const WAKE_TOKEN_TTL_MS = 2000;

/**
 * Ends the count of a wake-up that left tokens ("3t"). Workers claim on an unmarked one without asking for tokens, so
 * publishers that add none (an older version during a rolling upgrade) still wake them; older workers read "3t" as 1.
 */
export const TOKENS_MARK = "t";

/**
 * KEYS[1] the counter; ARGV: count, ttl ms, channel, the message with tokens, the message without. When the count
 * reaches the channel's subscribers (every worker of the queue may claim anyway: a single worker, a large batch) it
 * publishes the plain message and adds nothing, so those wake-ups cost the worker no round trip before its claim.
 * Otherwise it adds the tokens, then publishes.
 */
export const ANNOUNCE_SCRIPT = `local subscribers = redis.call('PUBSUB', 'NUMSUB', ARGV[3])[2]
if tonumber(ARGV[1]) >= subscribers then return redis.call('PUBLISH', ARGV[3], ARGV[5]) end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('PUBLISH', ARGV[3], ARGV[4])`;

/**
 * Tokens announced for a due time live until that time (by the publisher's clock) plus this margin, which covers
 * the offsets between the clocks of the publisher, the database and the workers; a worker that comes later finds no
 * counter and claims, as without tokens.
 */
export const DUE_TIME_MARGIN_MS = 10_000;

/**
 * KEYS[1] the counter; ARGV[1] the most to take. Takes what is there up to that (never below zero) and returns it;
 * -1 when there is no counter (expired, or Redis lost it): the caller then claims, as without tokens.
 */
export const TAKE_SCRIPT = `local v = redis.call('GET', KEYS[1])
if not v then return -1 end
local n = tonumber(v)
if n <= 0 then return 0 end
local t = math.min(n, tonumber(ARGV[1]))
redis.call('DECRBY', KEYS[1], t)
return t`;

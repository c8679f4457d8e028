import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Decision } from '../rate-limit/algorithms.js';

/**
 * One decision = one atomic script on one key, on Redis's own clock (TIME),
 * so sidecars with skewed clocks agree. Each key holds a small hash:
 * token bucket `{tokens, last}`, windows `{start, count, prev}`; it expires
 * when it no longer matters. Arguments: kind ('tb' | 'fw' | 'sw'), then
 * maxTokens, tokensPerFill, fillIntervalMs (tb) or requests, windowMs.
 * Returns {allowed (0|1), remaining, resetMs}.
 */
export const RATE_LIMIT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local kind = ARGV[1]
if kind == 'tb' then
  local max, per, interval = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
  local s = redis.call('HMGET', KEYS[1], 'tokens', 'last')
  local tokens, last = tonumber(s[1]), tonumber(s[2])
  if tokens == nil or last == nil then tokens = max; last = now end
  local fills = math.floor((now - last) / interval)
  if fills > 0 then tokens = math.min(max, tokens + fills * per); last = last + fills * interval end
  local allowed = 0
  if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'last', last)
  redis.call('PEXPIRE', KEYS[1], (math.ceil((max - tokens) / per) + 1) * interval)
  return {allowed, tokens, last + interval - now}
end
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local start = now - (now % window)
local s = redis.call('HMGET', KEYS[1], 'start', 'count', 'prev')
local st, count, prev = tonumber(s[1]), tonumber(s[2]) or 0, tonumber(s[3]) or 0
if st ~= start then
  if st ~= nil and start - st == window then prev = count else prev = 0 end
  count = 0
end
local used = count
if kind == 'sw' then used = prev * (window - (now - start)) / window + count end
local allowed = 0
if used + 1 <= limit then count = count + 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'start', start, 'count', count, 'prev', prev)
redis.call('PEXPIRE', KEYS[1], window * 2)
return {allowed, math.max(0, math.floor(limit - used - allowed)), start + window - now}
`;

const SHA = createHash('sha1').update(RATE_LIMIT_LUA).digest('hex');

/** The script's parameters for one limit (kind first). */
export type ScriptArgs = readonly (string | number)[];

/**
 * The Redis key of one limit and key value. The whole name is one hash tag
 * (`{…}`), so a key lives in one Redis Cluster slot whatever it holds; the
 * key value is hashed, so header values never reach Redis and keys stay short.
 */
export function redisKey(domain: string, limit: string, value: string): string {
  const h = createHash('sha256').update(value).digest('base64url').slice(0, 22);
  return `outrigger:rl:{${domain}:${limit}:${h}}`;
}

/** Runs the script (EVALSHA, loading it with EVAL the first time a server lacks it). */
export async function decide(redis: Redis, key: string, args: ScriptArgs, limit: number): Promise<Decision> {
  let r: unknown;
  try {
    r = await redis.evalsha(SHA, 1, key, ...args);
  } catch (err) {
    if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
    r = await redis.eval(RATE_LIMIT_LUA, 1, key, ...args);
  }
  const [allowed, remaining, resetMs] = r as [number, number, number];
  return { allowed: allowed === 1, limit, remaining: Number(remaining), resetMs: Math.max(0, Number(resetMs)) };
}

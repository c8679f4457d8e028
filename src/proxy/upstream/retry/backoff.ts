import type { Random } from '../../../core/random.js';

/**
 * Full-jitter exponential backoff (AWS's "full jitter", Envoy's retry
 * back-off): the n-th retry (n ≥ 1) waits a uniformly random time in
 * [0, min(maxMs, baseMs × 2^(n−1))). Jitter spreads the retries of many
 * callers that failed together, so they do not hit the upstream together again.
 */
export function retryBackoffMs(n: number, baseMs: number, maxMs: number, random: Random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, n - 1));
  return random.next() * ceiling;
}

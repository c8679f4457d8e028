import type { Random } from '../../core/random.js';

/**
 * Exponential backoff with jitter: attempt n waits a uniformly random time in
 * [d/2, d] where d = min(max, initial · 2^n). Pure; the caller owns the timer.
 */
export function backoffDelayMs(attempt: number, random: Random, initialMs = 250, maxMs = 30_000): number {
  const d = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return d / 2 + random.next() * (d / 2);
}

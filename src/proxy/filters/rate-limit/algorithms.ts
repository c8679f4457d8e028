/**
 * The rate-limit algorithms, pure over a monotonic time in milliseconds so
 * they run on the injected clock (and a fake one in tests). Each keeps its
 * state in a small object per key value; `take` counts one request.
 */
export interface Decision {
  readonly allowed: boolean;
  readonly limit: number;
  readonly remaining: number;
  /** Milliseconds until the quota (or, refused, one more request) is available again. */
  readonly resetMs: number;
}

export interface Algorithm<S> {
  readonly limit: number;
  init(nowMs: number): S;
  take(state: S, nowMs: number): Decision;
}

export interface TokenBucketState {
  tokens: number;
  /** Start of the current fill interval. */
  lastFill: number;
}

/** Starts full; every `fillIntervalMs`, `tokensPerFill` tokens are added, up to `maxTokens`. */
export function tokenBucket(maxTokens: number, tokensPerFill: number, fillIntervalMs: number): Algorithm<TokenBucketState> {
  return {
    limit: maxTokens,
    init: (now) => ({ tokens: maxTokens, lastFill: now }),
    take(s, now) {
      const fills = Math.floor((now - s.lastFill) / fillIntervalMs);
      if (fills > 0) {
        s.tokens = Math.min(maxTokens, s.tokens + fills * tokensPerFill);
        s.lastFill += fills * fillIntervalMs;
      }
      const nextFill = s.lastFill + fillIntervalMs - now;
      if (s.tokens < 1) return { allowed: false, limit: maxTokens, remaining: 0, resetMs: nextFill };
      s.tokens -= 1;
      return { allowed: true, limit: maxTokens, remaining: s.tokens, resetMs: nextFill };
    },
  };
}

export interface WindowState {
  /** Start of the current window (a multiple of the window length). */
  start: number;
  count: number;
  /** Requests counted in the window before (sliding window only). */
  previous: number;
}

/** `requests` per aligned window of `windowMs`. */
export function fixedWindow(requests: number, windowMs: number): Algorithm<WindowState> {
  return {
    limit: requests,
    init: (now) => ({ start: now - (now % windowMs), count: 0, previous: 0 }),
    take(s, now) {
      roll(s, now, windowMs);
      const resetMs = s.start + windowMs - now;
      if (s.count >= requests) return { allowed: false, limit: requests, remaining: 0, resetMs };
      s.count++;
      return { allowed: true, limit: requests, remaining: requests - s.count, resetMs };
    },
  };
}

/**
 * `requests` per sliding `windowMs`, estimated (as Cloudflare and Envoy's
 * descriptors do) from the current window's count plus the previous window's
 * weighted by how much of it the sliding window still covers.
 */
export function slidingWindow(requests: number, windowMs: number): Algorithm<WindowState> {
  return {
    limit: requests,
    init: (now) => ({ start: now - (now % windowMs), count: 0, previous: 0 }),
    take(s, now) {
      roll(s, now, windowMs);
      const elapsed = now - s.start;
      const weight = (windowMs - elapsed) / windowMs;
      const used = s.previous * weight + s.count;
      if (used + 1 > requests) {
        // When enough of the previous window slides out for one more request.
        const needMs = s.previous > 0 ? Math.ceil(((used + 1 - requests) / s.previous) * windowMs) : windowMs - elapsed;
        return { allowed: false, limit: requests, remaining: 0, resetMs: Math.max(1, Math.min(needMs, windowMs * 2 - elapsed)) };
      }
      s.count++;
      return { allowed: true, limit: requests, remaining: Math.max(0, Math.floor(requests - used - 1)), resetMs: windowMs - elapsed };
    },
  };
}

function roll(s: WindowState, now: number, windowMs: number): void {
  const start = now - (now % windowMs);
  if (start === s.start) return;
  s.previous = start - s.start === windowMs ? s.count : 0;
  s.count = 0;
  s.start = start;
}

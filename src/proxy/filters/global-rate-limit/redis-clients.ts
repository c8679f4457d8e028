import type { Redis } from 'ioredis';
import { ioredis } from '../redis-library.js';
import type { Logger } from 'pino';
import type { Clock } from '../../../core/clock.js';

/** How long a decision waits, at least, for a client's first connection (docs/filters.md#globalratelimit). */
export const FIRST_CONNECT_WAIT_MS = 1000;

/**
 * One Redis client of the globalRateLimit filter, and whether it has ever
 * been ready. Commands are not queued while disconnected (a decision fails at
 * once, and failureMode decides), but that must not hold for the moments
 * between start-up and the first connection: a sidecar that starts with its
 * Redis (or just before it) would otherwise let its first requests through
 * unlimited (or refuse them). Until the first 'ready', `whenUsable` waits for
 * it, bounded by its own timer; afterwards it answers at once.
 */
export class RedisClient {
  readonly redis: Redis;
  private readyOnce = false;
  private waiters: (() => void)[] = [];

  constructor(url: string, logger: Logger | undefined) {
    this.redis = new (ioredis().Redis)(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectionName: 'outrigger-ratelimit',
      // Before the first connection, retry sooner (decisions are waiting for it), but never more than twice a second
      // once that wait is over; afterwards ioredis's default backoff.
      retryStrategy: (times) => (this.readyOnce ? Math.min(times * 50, 2000) : Math.min(times * 20, 500)),
    });
    this.redis.on('error', (err: Error) => logger?.debug({ err: err.message }, 'rate-limit redis'));
    this.redis.once('ready', () => {
      this.readyOnce = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** True when commands can be sent now; otherwise `whenFirstReady` says when. */
  get everReady(): boolean {
    return this.readyOnce;
  }

  /** Resolves true on the first 'ready', false when `waitMs` passes first. */
  whenFirstReady(clock: Clock, waitMs: number): Promise<boolean> {
    if (this.readyOnce) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        timer.cancel();
        resolve(true);
      };
      const timer = clock.setTimer(waitMs, () => {
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
      });
      this.waiters.push(done);
    });
  }

  disconnect(): void {
    this.redis.disconnect();
    for (const w of this.waiters.splice(0)) w();
  }
}

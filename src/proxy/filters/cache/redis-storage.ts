import type { Redis } from 'ioredis';
import { ioredis } from '../redis-library.js';
import type { Logger } from 'pino';
import { decodeRecord, encodeRecord, type CacheRecord, type CacheStorage } from './storage.js';

/**
 * Redis storage, shared by every sidecar pointed at the same server: one
 * string per record (storage.ts's wire form) with its TTL on the key
 * (`SET … PX`), so Redis forgets expired entries itself. Redis trouble is a
 * miss, never a failed request: no offline queue and no retries (a command
 * fails at once while the connection is down), and one log line each time
 * the connection goes down or comes back, not one per request.
 */
export class RedisStorage implements CacheStorage {
  private readonly redis: Redis;
  private up: boolean | undefined = undefined;

  constructor(
    url: string,
    private readonly logger: Logger | undefined,
    private readonly name: string,
  ) {
    this.redis = new (ioredis().Redis)(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, connectionName: 'outrigger-cache', lazyConnect: false });
    this.redis.on('ready', () => this.state(true));
    this.redis.on('error', (err: Error) => this.state(false, err.message));
    this.redis.on('end', () => this.state(false, 'connection closed'));
  }

  private state(up: boolean, why?: string): void {
    if (this.up === up) return;
    const was = this.up;
    this.up = up;
    if (up && was === undefined) return; // the first connect is not news
    if (up) this.logger?.info({ filter: this.name }, 'cache redis reachable again');
    else this.logger?.warn({ filter: this.name, err: why }, 'cache redis unreachable: requests are misses until it is back');
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    try {
      const b = await this.redis.getBuffer(key);
      return b === null ? undefined : decodeRecord(b);
    } catch (err) {
      this.state(false, (err as Error).message);
      return undefined;
    }
  }

  async set(key: string, rec: CacheRecord, ttlMs: number): Promise<void> {
    try {
      await this.redis.set(key, encodeRecord(rec), 'PX', Math.max(1, Math.ceil(ttlMs)));
    } catch (err) {
      this.state(false, (err as Error).message);
    }
  }

  /** SCAN + UNLINK in batches (never KEYS, which blocks a shared server). */
  async purge(prefix: string): Promise<number> {
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) n += await this.redis.unlink(...keys);
    } while (cursor !== '0');
    return n;
  }

  close(): void {
    this.redis.disconnect();
  }
}

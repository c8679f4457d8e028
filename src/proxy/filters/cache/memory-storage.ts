import { LRUCache } from 'lru-cache';
import { recordBytes, type CacheRecord, type CacheStorage } from './storage.js';

export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * In-process storage: `lru-cache` with a byte budget (least recently used
 * evicted first) and a TTL per record. Records are kept as objects, so a hit
 * decodes nothing. `onEvict` hears of records dropped for space (not those
 * that expired or were replaced), for the evictions metric.
 */
export class MemoryStorage implements CacheStorage {
  private readonly lru: LRUCache<string, CacheRecord>;

  constructor(maxBytes: number, nowMs: () => number, onEvict: () => void) {
    this.lru = new LRUCache<string, CacheRecord>({
      maxSize: maxBytes,
      sizeCalculation: (r) => Math.max(1, recordBytes(r)),
      ttlAutopurge: false,
      // No cached 'now' (lru-cache's default keeps one for 1 ms of real time): the injected clock is the only time.
      ttlResolution: 0,
      // The injected clock, so tests move time without sleeping.
      perf: { now: nowMs },
      dispose: (_v, _k, reason) => {
        if (reason === 'evict') onEvict();
      },
    });
  }

  get(key: string): Promise<CacheRecord | undefined> {
    return Promise.resolve(this.lru.get(key));
  }

  set(key: string, rec: CacheRecord, ttlMs: number): Promise<void> {
    // A record larger than the whole budget is refused by lru-cache: nothing to do.
    this.lru.set(key, rec, { ttl: Math.max(1, Math.ceil(ttlMs)) });
    return Promise.resolve();
  }

  purge(prefix: string): Promise<number> {
    let n = 0;
    for (const k of [...this.lru.keys()]) {
      if (k.startsWith(prefix) && this.lru.delete(k)) n++;
    }
    return Promise.resolve(n);
  }

  close(): void {
    this.lru.clear();
  }
}

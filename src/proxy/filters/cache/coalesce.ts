import type { CachedResponse } from './storage.js';

/**
 * Request coalescing: the first miss for a key (the leader) goes upstream;
 * misses for the same key while it is under way wait for its outcome instead
 * of making their own upstream call. The leader settles with the stored
 * response (the waiters are answered from it) or undefined (not cacheable,
 * failed: each waiter goes upstream itself).
 */
export class Coalescer {
  private readonly inflight = new Map<string, Flight>();

  /** Undefined: the caller leads (and must `settle`); else the leader's outcome to wait for. */
  join(key: string): Promise<CachedResponse | undefined> | undefined {
    const f = this.inflight.get(key);
    if (f !== undefined) return f.promise;
    let resolve!: (r: CachedResponse | undefined) => void;
    const promise = new Promise<CachedResponse | undefined>((r) => (resolve = r));
    this.inflight.set(key, { promise, resolve });
    return undefined;
  }

  /** Is a leader already fetching `key`? */
  inFlight(key: string): boolean {
    return this.inflight.has(key);
  }

  /** The leader's outcome (a second call is ignored). */
  settle(key: string, r: CachedResponse | undefined): void {
    const f = this.inflight.get(key);
    if (f === undefined) return;
    this.inflight.delete(key);
    f.resolve(r);
  }

  get size(): number {
    return this.inflight.size;
  }
}

interface Flight {
  readonly promise: Promise<CachedResponse | undefined>;
  readonly resolve: (r: CachedResponse | undefined) => void;
}

import type { createLocalJWKSet, JSONWebKeySet, JWSHeaderParameters, FlattenedJWSInput } from 'jose';
import { jose } from './jose-library.js';
import type { Clock } from '../../../core/clock.js';

/** Fetches a JWKS document; rejects on a non-2xx answer, a body that is not a JWKS, or the timeout. */
export type JwksFetcher = (uri: string, timeoutMs: number) => Promise<JSONWebKeySet>;

export const KID_MISS_REFETCH_MS = 30_000;

type KeyResolver = ReturnType<typeof createLocalJWKSet>;

/**
 * A provider's remote JWKS, kept across config versions (the factory shares
 * one per URI):
 * - the first request waits for the first fetch; after that requests never
 *   wait for a refresh: past `cacheDurationMs` the current keys keep serving
 *   while one background fetch replaces them;
 * - a token whose `kid` is not in the set (a key rotated in) triggers one
 *   refetch, at most once per kid per 30 s, so a flood of tokens with made-up
 *   kids cannot turn into a flood of fetches;
 * - when the issuer is unreachable the last good keys are served, stale, for
 *   as long as it takes.
 */
export class RemoteJwks {
  private keys: KeyResolver | undefined;
  private fetchedAt = 0;
  private inflight: Promise<void> | undefined;
  private readonly kidMisses = new Map<string, number>();
  /** The last fetch error, for the audit reason when there are no keys at all. */
  lastError: string | undefined;

  constructor(
    readonly uri: string,
    private readonly cacheDurationMs: number,
    private readonly timeoutMs: number,
    private readonly clock: Clock,
    private readonly fetcher: JwksFetcher,
  ) {}

  /** The key resolver for jose's jwtVerify; may wait for the first fetch or a kid-miss refetch. */
  readonly resolve = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    if (!this.keys) await this.refresh();
    else if (this.clock.monotonicMs() - this.fetchedAt >= this.cacheDurationMs) void this.refresh();
    const keys = this.keys;
    if (!keys) throw new JwksUnavailable(this.lastError ?? 'no keys');
    try {
      return (await keys(header, token)) as CryptoKey;
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY' || !this.mayRefetchFor(header.kid ?? '')) throw err;
      await this.refresh();
      return (await this.keys!(header, token)) as CryptoKey;
    }
  };

  private mayRefetchFor(kid: string): boolean {
    const now = this.clock.monotonicMs();
    const last = this.kidMisses.get(kid);
    if (last !== undefined && now - last < KID_MISS_REFETCH_MS) return false;
    if (this.kidMisses.size >= 1024) this.kidMisses.clear(); // made-up kids must not grow memory without bound
    this.kidMisses.set(kid, now);
    return true;
  }

  /** One fetch at a time; a failure keeps the keys we had. */
  refresh(): Promise<void> {
    this.inflight ??= this.fetcher(this.uri, this.timeoutMs)
      .then(
        (jwks) => {
          this.keys = jose().createLocalJWKSet(jwks);
          this.fetchedAt = this.clock.monotonicMs();
          this.lastError = undefined;
        },
        (err: unknown) => {
          this.lastError = err instanceof Error ? err.message : String(err);
          // Retry after a while rather than on every request while the issuer is down.
          if (this.keys) this.fetchedAt = this.clock.monotonicMs() - this.cacheDurationMs + Math.min(this.cacheDurationMs, KID_MISS_REFETCH_MS);
        },
      )
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }
}

export class JwksUnavailable extends Error {}

/** The default fetcher: global fetch with the timeout on the injected clock. */
export function httpJwksFetcher(clock: Clock): JwksFetcher {
  return async (uri, timeoutMs) => {
    const ac = new AbortController();
    const t = clock.setTimer(timeoutMs, () => ac.abort(new Error(`JWKS fetch timed out after ${timeoutMs}ms`)));
    try {
      const r = await fetch(uri, { signal: ac.signal, headers: { accept: 'application/json' } });
      if (!r.ok) throw new Error(`JWKS fetch answered HTTP ${r.status}`);
      const body = (await r.json()) as unknown;
      if (typeof body !== 'object' || body === null || !Array.isArray((body as { keys?: unknown }).keys)) throw new Error('JWKS document has no "keys" array');
      return body as JSONWebKeySet;
    } finally {
      t.cancel();
    }
  };
}

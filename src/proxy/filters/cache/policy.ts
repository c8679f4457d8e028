import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { ageHeaderMs, freshnessLifetimeMs, parseCacheControl, seconds, staleAllowed, unstorableReason, varyNames } from './freshness.js';
import type { CachedResponse } from './storage.js';

/** The backend's per-response time to live for gRPC (and transcoded) answers, in seconds. */
export const TTL_HEADER = 'x-outrigger-cache-ttl';

/** Response headers never stored: hop-by-hop ones and our own. */
const NOT_STORED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer', 'age', 'x-outrigger-cache', ':status']);

/** What a response's head says about storing it. */
export type StoreDecision =
  | { readonly store: false; readonly reason: string }
  | { readonly store: true; readonly freshMs: number; readonly swrMs: number; readonly sieMs: number; readonly vary: readonly string[] };

/**
 * An HTTP response (pass-through GET, or a transcoded REST / Connect GET) as
 * a shared cache judges it (RFC 9111 §3): statuses, no-store, private,
 * Vary: *, Set-Cookie (a shared cache never hands one client's cookie to
 * another), then explicit freshness. A transcoded answer without explicit
 * freshness may take the gRPC rules' lifetime (`fallbackTtlMs`).
 */
export function httpDecision(status: number, headers: OutgoingHttpHeaders, nowMs: number, fallbackTtlMs: number | undefined): StoreDecision {
  const cc = parseCacheControl(headers['cache-control'] as string | string[] | undefined);
  const reason = unstorableReason(status, cc, headers);
  if (reason !== undefined) return { store: false, reason };
  if (headers['set-cookie'] !== undefined) return { store: false, reason: 'set-cookie' };
  let freshMs = freshnessLifetimeMs(cc, headers, nowMs);
  if (freshMs === undefined) freshMs = fallbackTtlMs;
  if (freshMs === undefined) return { store: false, reason: 'no-freshness' };
  const stale = staleAllowed(cc);
  const vary = headers['vary'] === undefined ? [] : (varyNames(headers['vary'] as string) as string[]);
  return { store: true, freshMs, swrMs: stale ? (seconds(cc, 'stale-while-revalidate') ?? 0) : 0, sieMs: stale ? (seconds(cc, 'stale-if-error') ?? 0) : 0, vary };
}

/**
 * The lifetime of a gRPC answer: the method entry's, else the backend's
 * `x-outrigger-cache-ttl` header (seconds), else the filter's default;
 * undefined (0 included): not cached. Cache-Control in the metadata, if the
 * backend sends one, still forbids with no-store / private.
 */
export function grpcTtlMs(methodTtlMs: number | undefined, headers: OutgoingHttpHeaders, defaultTtlMs: number): number | undefined {
  const cc = parseCacheControl(headers['cache-control'] as string | string[] | undefined);
  if (cc.has('no-store') || cc.has('private')) return undefined;
  if (methodTtlMs !== undefined && methodTtlMs > 0) return methodTtlMs;
  const h = headers[TTL_HEADER];
  if (h !== undefined && /^\d+$/.test(String(h).trim())) {
    const s = Number(String(h).trim());
    return s > 0 ? s * 1000 : undefined;
  }
  return defaultTtlMs > 0 ? defaultTtlMs : undefined;
}

/** The response headers kept with an entry. */
export function storedHeaders(h: OutgoingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    const v = h[k];
    if (v === undefined || NOT_STORED.has(k)) continue;
    out[k] = Array.isArray(v) ? v.map(String) : String(v);
  }
  return out;
}

/** How long storage keeps an entry: its lifetime, its stale windows, and time to revalidate it when it has a validator. */
export function retentionMs(r: CachedResponse): number {
  const validator = r.headers['etag'] !== undefined || r.headers['last-modified'] !== undefined;
  return r.freshMs + Math.max(r.swrMs, r.sieMs, validator ? Math.max(r.freshMs, 60_000) : 0);
}

/** The entry's current age (RFC 9111 §4.2.3, with the receiving sidecar's clock). */
export function currentAgeMs(r: CachedResponse, nowMs: number): number {
  return r.initialAgeMs + Math.max(0, nowMs - r.storedAtMs);
}

export function initialAgeMs(headers: OutgoingHttpHeaders): number {
  return ageHeaderMs(headers);
}

/**
 * A 304 from the origin refreshes the stored entry (RFC 9111 §4.3.4): its
 * headers replace the stored ones of the same name, and the freshness is
 * recomputed from the merged headers.
 */
export function refreshed(r: CachedResponse, h304: OutgoingHttpHeaders, nowMs: number): CachedResponse {
  const headers = { ...r.headers, ...storedHeaders(h304) };
  delete headers['content-length'];
  if (r.headers['content-length'] !== undefined) headers['content-length'] = r.headers['content-length'];
  const d = httpDecision(r.status, headers, nowMs, r.freshMs);
  return {
    ...r,
    headers,
    storedAtMs: nowMs,
    initialAgeMs: ageHeaderMs(h304),
    freshMs: d.store ? d.freshMs : r.freshMs,
    swrMs: d.store ? d.swrMs : r.swrMs,
    sieMs: d.store ? d.sieMs : r.sieMs,
  };
}

/** Did the client send its own conditional headers (then the origin's 304 is for it, not for us)? */
export function hasConditionals(h: IncomingHttpHeaders): boolean {
  return h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined;
}

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';

/**
 * RFC 9111 as a shared cache applies it, pure (no clock of its own: times are
 * passed in), so every rule is tested on its own.
 */

/** Parsed Cache-Control: directive → value ('' for a bare directive). */
export type Directives = ReadonlyMap<string, string>;

const EMPTY: Directives = new Map();

export function parseCacheControl(v: string | string[] | number | undefined): Directives {
  if (v === undefined) return EMPTY;
  const s = Array.isArray(v) ? v.join(',') : String(v);
  if (s === '') return EMPTY;
  const out = new Map<string, string>();
  for (const part of s.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name === '') continue;
    let val = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (val.startsWith('"') && val.endsWith('"')) val = val.slice(1, -1);
    if (!out.has(name)) out.set(name, val);
  }
  return out;
}

/** A delta-seconds directive's value in ms (undefined: absent or not a number). */
export function seconds(d: Directives, name: string): number | undefined {
  const v = d.get(name);
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v) * 1000;
}

/**
 * Statuses RFC 9110 §15.1 calls heuristically cacheable (we still require
 * explicit freshness for them: no heuristic lifetimes from Last-Modified).
 */
export const CACHEABLE_STATUSES: ReadonlySet<number> = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);

/** Why a response is not stored (undefined: storable). */
export function unstorableReason(status: number, cc: Directives, headers: OutgoingHttpHeaders): string | undefined {
  if (!CACHEABLE_STATUSES.has(status)) return 'status';
  if (cc.has('no-store')) return 'no-store';
  if (cc.has('private')) return 'private';
  const vary = headers['vary'];
  if (vary !== undefined && varyNames(vary) === '*') return 'vary-star';
  return undefined;
}

/**
 * The freshness lifetime in ms (RFC 9111 §4.2.1): s-maxage, then max-age,
 * then Expires − Date; undefined when the response gives none (not cached:
 * no heuristic freshness). `no-cache` makes the lifetime 0 (stored, but
 * revalidated before every use).
 */
export function freshnessLifetimeMs(cc: Directives, headers: OutgoingHttpHeaders, nowMs: number): number | undefined {
  if (cc.has('no-cache')) return 0;
  const s = seconds(cc, 's-maxage');
  if (s !== undefined) return s;
  const m = seconds(cc, 'max-age');
  if (m !== undefined) return m;
  const exp = headers['expires'];
  if (exp !== undefined) {
    const e = Date.parse(String(exp));
    if (Number.isNaN(e)) return 0; // an invalid Expires means "already expired" (§5.3)
    const date = headers['date'] !== undefined ? Date.parse(String(headers['date'])) : NaN;
    return Math.max(0, e - (Number.isNaN(date) ? nowMs : date));
  }
  return undefined;
}

/** May a stale copy be served at all (must-revalidate, proxy-revalidate, s-maxage forbid it)? */
export function staleAllowed(cc: Directives): boolean {
  return !cc.has('must-revalidate') && !cc.has('proxy-revalidate') && !cc.has('s-maxage') && !cc.has('no-cache');
}

/** The response's Age header in ms (0 when absent or invalid). */
export function ageHeaderMs(headers: OutgoingHttpHeaders): number {
  const a = headers['age'];
  if (a === undefined || !/^\d+$/.test(String(a))) return 0;
  return Number(a) * 1000;
}

/**
 * Vary's field names, lower-cased and sorted (the key part), or `*`.
 */
export function varyNames(v: string | string[] | number): string[] | '*' {
  const names = (Array.isArray(v) ? v.join(',') : String(v))
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter((n) => n !== '');
  if (names.includes('*')) return '*';
  return [...new Set(names)].sort();
}

/** What a request's own Cache-Control asks of the cache (RFC 9111 §5.2.1). */
export interface RequestRules {
  /** `no-store`: neither served from nor stored in the cache. */
  readonly noStore: boolean;
  /** `no-cache` (or `Pragma: no-cache` without Cache-Control): not served without asking the origin. */
  readonly noCache: boolean;
  /** `max-age`: the oldest copy the client accepts (ms). */
  readonly maxAgeMs: number | undefined;
  /** `min-fresh`: the copy must stay fresh this much longer (ms). */
  readonly minFreshMs: number;
  /** `max-stale`: a stale copy is acceptable up to this much past its lifetime (ms; Infinity when bare). */
  readonly maxStaleMs: number;
}

const NO_RULES: RequestRules = { noStore: false, noCache: false, maxAgeMs: undefined, minFreshMs: 0, maxStaleMs: 0 };

export function requestRules(h: IncomingHttpHeaders): RequestRules {
  const raw = h['cache-control'];
  if (raw === undefined) return h['pragma'] !== undefined && /no-cache/i.test(String(h['pragma'])) ? { ...NO_RULES, noCache: true } : NO_RULES;
  const cc = parseCacheControl(raw);
  if (cc.size === 0) return NO_RULES;
  const ms = cc.get('max-stale');
  return {
    noStore: cc.has('no-store'),
    noCache: cc.has('no-cache'),
    maxAgeMs: seconds(cc, 'max-age'),
    minFreshMs: seconds(cc, 'min-fresh') ?? 0,
    maxStaleMs: ms === undefined ? 0 : ms === '' ? Infinity : (seconds(cc, 'max-stale') ?? 0),
  };
}

/** Does `If-None-Match` match the entity tag (weak comparison, RFC 9110 §13.1.2)? */
export function etagMatches(ifNoneMatch: string, etag: string | undefined): boolean {
  if (etag === undefined) return false;
  if (ifNoneMatch.trim() === '*') return true;
  const bare = (t: string): string => t.trim().replace(/^W\//, '');
  const want = bare(etag);
  return ifNoneMatch.split(',').some((t) => bare(t) === want);
}

/** Is the representation unmodified since `If-Modified-Since` (only when If-None-Match is absent)? */
export function notModifiedSince(ims: string, lastModified: string | undefined): boolean {
  if (lastModified === undefined) return false;
  const a = Date.parse(ims);
  const b = Date.parse(lastModified);
  return !Number.isNaN(a) && !Number.isNaN(b) && b <= a;
}

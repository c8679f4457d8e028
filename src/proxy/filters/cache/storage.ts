/**
 * One stored response (or, under a Vary'd URL's primary key, the marker that
 * names the varied request headers). Times are wall-clock ms (`Clock.nowMs`),
 * so sidecars sharing a Redis agree on ages within their clock skew.
 */
export interface CachedResponse {
  readonly kind: 'response';
  readonly status: number;
  /** Response headers as stored: end-to-end ones, without Age and x-outrigger-cache. */
  headers: Record<string, string | string[]>;
  readonly body: Buffer;
  /** gRPC trailers (grpc-status 0 and the backend's trailing metadata). */
  readonly trailers?: Record<string, string> | undefined;
  /** When the response (or the 304 that refreshed it) was received. */
  storedAtMs: number;
  /** Age it already had when received (its Age header), ms. */
  initialAgeMs: number;
  /** Freshness lifetime, ms. */
  freshMs: number;
  /** stale-while-revalidate and stale-if-error windows past the lifetime, ms (0 when must-revalidate forbids stale use). */
  swrMs: number;
  sieMs: number;
}

/** A Vary'd URL: the entries live under `primary|vary:<hash of these headers' values>`. */
export interface VaryMarker {
  readonly kind: 'vary';
  readonly names: readonly string[];
}

export type CacheRecord = CachedResponse | VaryMarker;

/**
 * Where a cache filter keeps its records: memory (one sidecar) or Redis
 * (shared by sidecars). Failures are the storage's business: `get` resolves
 * undefined (a miss) and `set` gives up quietly, so a broken store costs hit
 * rate, never a request.
 */
export interface CacheStorage {
  get(key: string): Promise<CacheRecord | undefined>;
  /** Stores `rec` for `ttlMs` (the storage forgets it then). */
  set(key: string, rec: CacheRecord, ttlMs: number): Promise<void>;
  /** Deletes every key starting with `prefix` (the full key, key prefix included); resolves how many. */
  purge(prefix: string): Promise<number>;
  close(): void;
}

/** Records' size as a budget counts it: the body plus a rough header size. */
export function recordBytes(rec: CacheRecord): number {
  if (rec.kind === 'vary') return 64;
  let n = rec.body.length + 128;
  for (const k in rec.headers) n += k.length + String(rec.headers[k]).length + 4;
  return n;
}

/**
 * The wire form of a record (Redis): a 4-byte length, the JSON of everything
 * but the body, then the body's bytes as they are (no base64).
 */
export function encodeRecord(rec: CacheRecord): Buffer {
  if (rec.kind === 'vary') {
    const j = Buffer.from(JSON.stringify(rec));
    const out = Buffer.allocUnsafe(4 + j.length);
    out.writeUInt32BE(j.length, 0);
    j.copy(out, 4);
    return out;
  }
  const { body, ...meta } = rec;
  const j = Buffer.from(JSON.stringify(meta));
  const out = Buffer.allocUnsafe(4 + j.length + body.length);
  out.writeUInt32BE(j.length, 0);
  j.copy(out, 4);
  body.copy(out, 4 + j.length);
  return out;
}

export function decodeRecord(b: Buffer): CacheRecord | undefined {
  if (b.length < 4) return undefined;
  const n = b.readUInt32BE(0);
  if (4 + n > b.length) return undefined;
  const meta = JSON.parse(b.subarray(4, 4 + n).toString()) as CacheRecord;
  if (meta.kind === 'vary') return meta;
  if (meta.kind !== 'response') return undefined;
  return { ...meta, body: b.subarray(4 + n) };
}

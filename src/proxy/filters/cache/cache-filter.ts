import type { OutgoingHttpHeaders } from 'node:http2';
import { Readable } from 'node:stream';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { createFileRegistry, fromBinary, type DescMethod } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema, MethodOptions_IdempotencyLevel } from '@bufbuild/protobuf/wkt';
import type { Clock } from '../../../core/clock.js';
import { durationMs } from '../../../core/duration.js';
import type { Cache } from '../../../gen/outrigger/filters/cache/v1/cache_pb.js';
import type { Downstream } from '../../downstream/downstream.js';
import type { FilterFactory, FilterVerdict, HttpFilter } from '../filter.js';
import { Coalescer } from './coalesce.js';
import { etagMatches, notModifiedSince, requestRules, varyNames, type RequestRules } from './freshness.js';
import { grpcKey, httpKey, varyKey } from './key.js';
import { DEFAULT_MAX_BYTES, MemoryStorage } from './memory-storage.js';
import { currentAgeMs, grpcTtlMs, hasConditionals, httpDecision, initialAgeMs, refreshed, retentionMs, storedHeaders, type StoreDecision } from './policy.js';
import { RedisStorage } from './redis-storage.js';
import type { CachedResponse, CacheStorage } from './storage.js';

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
export const DEFAULT_KEY_PREFIX = 'outrigger:cache:';
const CACHE_HEADER = 'x-outrigger-cache';

export interface CacheDeps {
  readonly clock: Clock;
  readonly registry: Registry;
  readonly logger?: Logger | undefined;
}

/** The metrics every cache filter shares (label `filter`: the entry's name). */
interface CacheMetrics {
  readonly lookups: Counter<'filter' | 'result'>;
  readonly coalesced: Counter<'filter'>;
  readonly storedBytes: Counter<'filter'>;
  readonly evictions: Counter<'filter'>;
}

/**
 * One storage (and its coalescer) per filter name and storage config, kept
 * across config versions: a reload neither empties the memory cache nor
 * reconnects to Redis.
 */
interface Store {
  readonly storage: CacheStorage;
  readonly coalescer: Coalescer;
  readonly keyPrefix: string;
}

/**
 * The `cache` filter factory (docs/filters.md#cache). `purge(prefix)` deletes
 * every key under `<keyPrefix><prefix>` in every storage (the admin
 * `POST /cache/purge`); `close()` ends Redis connections.
 */
export function cacheFactory(deps: CacheDeps): FilterFactory<Cache> & { purge(prefix: string): Promise<number>; close(): void } {
  const metrics: CacheMetrics = {
    lookups: new Counter({ name: 'outrigger_cache_lookups_total', help: 'Cache filter lookups by result: hit, miss, stale (served past its lifetime).', labelNames: ['filter', 'result'], registers: [deps.registry] }),
    coalesced: new Counter({ name: 'outrigger_cache_coalesced_total', help: 'Cache misses that waited for another request of the same key instead of going upstream.', labelNames: ['filter'], registers: [deps.registry] }),
    storedBytes: new Counter({ name: 'outrigger_cache_stored_bytes_total', help: 'Response bytes (headers and body) written to cache storage.', labelNames: ['filter'], registers: [deps.registry] }),
    evictions: new Counter({ name: 'outrigger_cache_evictions_total', help: 'Memory cache entries evicted for space (the byte budget).', labelNames: ['filter'], registers: [deps.registry] }),
  };
  const stores = new Map<string, Store>();
  const storeFor = (c: Cache, name: string): Store => {
    const keyPrefix = c.keyPrefix || DEFAULT_KEY_PREFIX;
    const id = c.storage.case === 'redis' ? `${name}|redis|${c.storage.value.url}|${keyPrefix}` : `${name}|memory|${Number(c.storage.value?.maxBytes || DEFAULT_MAX_BYTES)}|${keyPrefix}`;
    let s = stores.get(id);
    if (s === undefined) {
      const evicted = metrics.evictions.labels(name);
      const storage =
        c.storage.case === 'redis'
          ? new RedisStorage(c.storage.value.url, deps.logger, name)
          : new MemoryStorage(Number(c.storage.value?.maxBytes || DEFAULT_MAX_BYTES), () => deps.clock.nowMs(), () => evicted.inc());
      s = { storage, coalescer: new Coalescer(), keyPrefix };
      stores.set(id, s);
    }
    return s;
  };
  return {
    name: 'cache',
    compile(c: Cache, name: string): HttpFilter {
      if (c.storage.case === 'redis' && !/^rediss?:\/\//.test(c.storage.value.url)) throw new Error('redis.url: a redis:// or rediss:// URL is required');
      return cacheFilter(name, c, storeFor(c, name), metrics, deps);
    },
    async purge(prefix: string): Promise<number> {
      let n = 0;
      for (const s of stores.values()) n += await s.storage.purge(s.keyPrefix + prefix);
      return n;
    },
    close() {
      for (const s of stores.values()) s.storage.close();
      stores.clear();
    },
  };
}

/** A compiled `grpcMethods` entry: exact `/pkg.Svc/Method` or a service's `/pkg.Svc/*`. */
interface MethodRule {
  readonly exact: string | undefined;
  readonly service: string | undefined;
  readonly ttlMs: number | undefined;
}

function compileMethods(c: Cache): MethodRule[] {
  return c.grpcMethods.map((m) => {
    const ttlMs = m.ttl ? durationMs(m.ttl, 0) : undefined;
    return m.method.endsWith('/*') ? { exact: undefined, service: m.method.slice(0, -1), ttlMs } : { exact: m.method, service: undefined, ttlMs };
  });
}

/** `descriptor_bin`'s methods by path (`/pkg.Svc/Method`). */
function descriptorMethods(bin: Uint8Array): Map<string, DescMethod> {
  const out = new Map<string, DescMethod>();
  if (bin.length === 0) return out;
  const reg = createFileRegistry(fromBinary(FileDescriptorSetSchema, bin));
  for (const f of reg.files) for (const s of f.services) for (const m of s.methods) out.set(`/${s.typeName}/${m.name}`, m);
  return out;
}

/** Per-exchange state of a request the cache took part in. */
interface Pending {
  /** `hit`: answered from the cache (our own head comes back through the response phase); `lead`: a miss or revalidation going upstream. */
  mode: 'hit' | 'lead';
  readonly key: string;
  readonly grpc: boolean;
  /** The stored entry being revalidated, or kept for stale-if-error. */
  stale: CachedResponse | undefined;
  /** We added the conditional headers (the origin's 304 is ours to turn into the stored answer). */
  ownConditional: boolean;
  readonly methodTtlMs: number | undefined;
  /** Capture of the upstream answer (undefined: not being stored). */
  status: number;
  headers: Record<string, string | string[]> | undefined;
  decision: StoreDecision | undefined;
  chunks: Buffer[];
  bytes: number;
  trailers: Record<string, string> | undefined;
  /** When the response head arrived (RFC 9111's response_time). */
  receivedAtMs: number;
  settled: boolean;
}

function cacheFilter(name: string, c: Cache, store: Store, m: CacheMetrics, deps: CacheDeps): HttpFilter {
  const { storage, coalescer, keyPrefix } = store;
  const clock = deps.clock;
  const maxBody = c.maxBodyBytes === undefined || c.maxBodyBytes === 0n ? DEFAULT_MAX_BODY_BYTES : Number(c.maxBodyBytes);
  const methods = compileMethods(c);
  const described = descriptorMethods(c.descriptorBin);
  const defaultTtlMs = c.defaultTtl ? durationMs(c.defaultTtl, 0) : 0;
  const hit = m.lookups.labels(name, 'hit');
  const miss = m.lookups.labels(name, 'miss');
  const staleServed = m.lookups.labels(name, 'stale');
  const coalesced = m.coalesced.labels(name);
  const storedBytes = m.storedBytes.labels(name);
  const states = new WeakMap<Downstream, Pending>();

  /** The method rule of a gRPC path (undefined: not configured). */
  const ruleOf = (path: string): MethodRule | undefined => {
    for (const r of methods) if (r.exact === path || (r.service !== undefined && path.startsWith(r.service))) return r;
    return undefined;
  };

  /** Whose answer this is: undefined when the request is not to be cached at all. */
  const principalOf = (ds: Downstream): string | null | undefined => {
    const p = ds.auth?.principal;
    if (ds.headers['authorization'] === undefined && p === undefined) return null;
    if (!c.cacheAuthorized || p === undefined) return undefined;
    return p;
  };

  /**
   * A backend that echoes `x-request-id` stored the id of the request that filled the entry; a hit
   * answers another request, so it carries that request's id (the one in its access-log line and
   * spans), never the stored one.
   */
  const withOwnRequestId = (ds: Downstream, h: OutgoingHttpHeaders): OutgoingHttpHeaders => {
    if (h['x-request-id'] === undefined) return h;
    if (ds.ex.request_id === undefined) delete h['x-request-id'];
    else h['x-request-id'] = ds.ex.request_id;
    return h;
  };

  /** The answer from a stored response: 304 when the client's validators match, else the whole response. */
  const answer = (ds: Downstream, r: CachedResponse, tag: 'hit' | 'stale'): FilterVerdict => {
    const now = clock.nowMs();
    const age = Math.floor(currentAgeMs(r, now) / 1000);
    if (r.trailers !== undefined) {
      ds.ex.grpc_status = '0';
      return { status: r.status, headers: withOwnRequestId(ds, { ...r.headers, [CACHE_HEADER]: tag }), body: r.body, trailers: { ...r.trailers } };
    }
    const headers: OutgoingHttpHeaders = withOwnRequestId(ds, { ...r.headers, age: String(age), [CACHE_HEADER]: tag });
    const inm = ds.headers['if-none-match'];
    const ims = ds.headers['if-modified-since'];
    const etag = r.headers['etag'] as string | undefined;
    const lm = r.headers['last-modified'] as string | undefined;
    if (r.status === 200 && (inm !== undefined ? etagMatches(inm, etag) : ims !== undefined && notModifiedSince(ims, lm))) {
      // RFC 9110 §15.4.5: the 304 carries the validators and caching headers, no content headers.
      const h304: OutgoingHttpHeaders = { age: String(age), [CACHE_HEADER]: tag };
      for (const k of ['etag', 'last-modified', 'cache-control', 'expires', 'vary', 'date', 'content-location']) if (headers[k] !== undefined) h304[k] = headers[k];
      return { status: 304, headers: h304 };
    }
    return { status: r.status, headers, body: r.body };
  };

  const settle = (st: Pending, r: CachedResponse | undefined): void => {
    if (st.settled) return;
    st.settled = true;
    coalescer.settle(st.key, r);
  };

  /** After the lookup: answer, or go upstream as the leader of the key (or wait for its leader). */
  const decide = async (ds: Downstream, key: string, rr: RequestRules, grpc: boolean, methodTtlMs: number | undefined): Promise<FilterVerdict> => {
    let rec = await storage.get(key);
    if (rec?.kind === 'vary') rec = await storage.get(varyKey(key, rec.names, ds.headers));
    const r = rec?.kind === 'response' ? rec : undefined;
    let stale: CachedResponse | undefined;
    if (r !== undefined && !rr.noCache) {
      const age = currentAgeMs(r, clock.nowMs());
      const fresh = age < r.freshMs && (rr.maxAgeMs === undefined || age <= rr.maxAgeMs) && age + rr.minFreshMs < r.freshMs;
      if (fresh) {
        hit.inc();
        states.set(ds, HIT);
        return answer(ds, r, 'hit');
      }
      const over = age - r.freshMs;
      if (over <= rr.maxStaleMs || (over < r.swrMs && coalescer.inFlight(key))) {
        // The client accepts it (max-stale), or another request is already refreshing it (stale-while-revalidate).
        staleServed.inc();
        states.set(ds, HIT);
        return answer(ds, r, 'stale');
      }
      stale = r;
    } else if (r !== undefined) stale = r;
    const leader = coalescer.join(key);
    if (leader !== undefined) {
      coalesced.inc();
      const got = await leader;
      if (got !== undefined && ds.scope.open) {
        hit.inc();
        states.set(ds, HIT);
        return answer(ds, got, 'hit');
      }
      miss.inc();
      return undefined; // not cacheable after all: this request goes upstream itself
    }
    miss.inc();
    const st: Pending = {
      mode: 'lead', key, grpc, stale, ownConditional: false, methodTtlMs,
      status: 0, headers: undefined, decision: undefined, chunks: [], bytes: 0, trailers: undefined, receivedAtMs: 0, settled: false,
    };
    if (stale !== undefined && !grpc && !hasConditionals(ds.headers)) {
      const etag = stale.headers['etag'];
      const lm = stale.headers['last-modified'];
      if (etag !== undefined) ds.headers['if-none-match'] = String(etag);
      else if (lm !== undefined) ds.headers['if-modified-since'] = String(lm);
      st.ownConditional = etag !== undefined || lm !== undefined;
    }
    states.set(ds, st);
    // The leader's outcome when the exchange ends, however it ends: waiters are never left hanging.
    ds.onClose(() => void finish(ds, st));
    return undefined;
  };

  const finish = async (ds: Downstream, st: Pending): Promise<void> => {
    if (st.settled) return;
    const d = st.decision;
    if (d === undefined || !d.store || st.headers === undefined || !ds.responseEnded || st.bytes > maxBody) return settle(st, undefined);
    if (st.grpc && st.trailers?.['grpc-status'] !== '0') return settle(st, undefined);
    const body = st.chunks.length === 1 ? st.chunks[0]! : Buffer.concat(st.chunks, st.bytes);
    const r: CachedResponse = {
      kind: 'response', status: st.status, headers: st.headers, body, trailers: st.trailers,
      storedAtMs: st.receivedAtMs, initialAgeMs: initialAgeMs(st.headers), freshMs: d.freshMs, swrMs: d.swrMs, sieMs: d.sieMs,
    };
    if (!st.grpc && r.headers['content-length'] === undefined) r.headers['content-length'] = String(body.length);
    await put(ds, st.key, r, d.vary);
    // A Vary'd answer fits only requests with the same varied headers: the waiters ask for themselves.
    settle(st, d.vary.length === 0 ? r : undefined);
  };

  const put = async (ds: Downstream, key: string, r: CachedResponse, vary: readonly string[]): Promise<void> => {
    const ttl = retentionMs(r);
    if (vary.length === 0) await storage.set(key, r, ttl);
    else {
      await storage.set(key, { kind: 'vary', names: vary }, ttl);
      await storage.set(varyKey(key, vary, ds.headers), r, ttl);
    }
    // Counted once written (a Redis write is a round trip after the client has its answer).
    storedBytes.inc(r.body.length);
  };

  /** Replaces the head being written with a stored response (after the origin's 304, or its failure). */
  const substitute = (ds: Downstream, headers: OutgoingHttpHeaders, r: CachedResponse, tag: 'hit' | 'stale'): void => {
    for (const k of Object.keys(headers)) delete headers[k];
    const v = answer(ds, r, tag) as { status: number; headers: OutgoingHttpHeaders; body?: Buffer; trailers?: OutgoingHttpHeaders };
    Object.assign(headers, v.headers);
    ds.substituteResponse(v.status, v.body, v.trailers);
  };

  return {
    name,
    onRequestHeaders(ds: Downstream): FilterVerdict | Promise<FilterVerdict> {
      if (ds.kind === 'ws') return undefined;
      const grpc = ds.grpc;
      if (!grpc && ds.method !== 'GET' && ds.method !== 'HEAD') return undefined;
      const rr = requestRules(ds.headers);
      if (rr.noStore) return undefined;
      const principal = principalOf(ds);
      if (principal === undefined) return undefined;
      const p = principal ?? undefined;
      if (!grpc) return decide(ds, httpKey(keyPrefix, ds.authority, ds.target, p), rr, false, undefined);
      const q = ds.target.indexOf('?');
      const path = q < 0 ? ds.target : ds.target.slice(0, q);
      const rule = ruleOf(path);
      if (rule === undefined) return undefined;
      // Only what the descriptor promises has no side effects, and only unary calls.
      const desc = ds.rpc ?? described.get(path);
      if (desc === undefined || desc.methodKind !== 'unary' || desc.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS) return undefined;
      return readMessage(ds, maxBody).then((msg) => (msg === undefined ? undefined : decide(ds, grpcKey(keyPrefix, ds.authority, path, msg, p), rr, true, rule.ttlMs)));
    },

    onResponseHeaders(ds: Downstream, status: number, headers: OutgoingHttpHeaders): void {
      const st = states.get(ds);
      if (st === undefined || st.mode === 'hit' || st.headers !== undefined) return;
      if (st.ownConditional) {
        // Ours, not the client's: a stored answer substituted below must not be judged against them.
        delete ds.headers['if-none-match'];
        delete ds.headers['if-modified-since'];
      }
      const now = clock.nowMs();
      const stale = st.stale;
      if (stale !== undefined) {
        if (status === 304 && st.ownConditional) {
          const r = refreshed(stale, headers, now);
          substitute(ds, headers, r, 'hit');
          const vary = r.headers['vary'] === undefined ? [] : varyNames(r.headers['vary']);
          if (vary === '*') return settle(st, undefined);
          void put(ds, st.key, r, vary);
          return settle(st, vary.length === 0 ? r : undefined);
        }
        const failed = st.grpc ? false : status >= 500;
        if (failed && currentAgeMs(stale, now) - stale.freshMs < stale.sieMs) {
          staleServed.inc();
          substitute(ds, headers, stale, 'stale');
          return settle(st, undefined);
        }
      }
      headers[CACHE_HEADER] = 'miss';
      if (ds.method === 'HEAD') return settle(st, undefined);
      let d: StoreDecision;
      if (st.grpc) {
        // A message compressed for this caller (grpc-encoding) is not stored: a later caller may not accept
        // that encoding, and the key does not carry grpc-accept-encoding.
        const enc = headers['grpc-encoding'];
        const compressed = enc !== undefined && enc !== 'identity';
        const ttl = status === 200 && headers['grpc-status'] === undefined && !compressed ? grpcTtlMs(st.methodTtlMs, headers, defaultTtlMs) : undefined;
        d = ttl === undefined ? { store: false, reason: compressed ? 'grpc-encoding' : 'grpc' } : { store: true, freshMs: ttl, swrMs: 0, sieMs: 0, vary: [] };
      } else {
        // A transcoded answer (REST, Connect GET) without explicit freshness takes the gRPC rules' lifetime.
        const transcoded = ds.ex.protocol === 'rest' || ds.ex.protocol === 'connect';
        d = httpDecision(status, headers, now, transcoded ? grpcTtlMs(undefined, headers, defaultTtlMs) : undefined);
      }
      if (!d.store) return settle(st, undefined);
      st.status = status;
      st.receivedAtMs = now;
      st.headers = storedHeaders(headers);
      st.decision = d;
    },

    onResponseData(ds: Downstream, chunk: Buffer): Buffer {
      const st = states.get(ds);
      if (st === undefined || st.headers === undefined || st.bytes > maxBody) return chunk;
      st.bytes += chunk.length;
      // Past the limit capture stops (the client's stream goes on untouched) and the answer is not stored.
      if (st.bytes > maxBody) st.chunks = [];
      else st.chunks.push(chunk);
      return chunk;
    },

    onResponseTrailers(ds: Downstream, trailers: OutgoingHttpHeaders): void {
      const st = states.get(ds);
      if (st === undefined || st.headers === undefined) return;
      const t: Record<string, string> = {};
      for (const k in trailers) if (trailers[k] !== undefined) t[k] = String(trailers[k]);
      st.trailers = t;
    },
  };
}

/** The state of every exchange answered from the cache (one shared object: a hit allocates no state). */
const HIT: Pending = Object.freeze({
  mode: 'hit', key: '', grpc: false, stale: undefined, ownConditional: false, methodTtlMs: undefined,
  status: 0, headers: undefined, decision: undefined, chunks: [], bytes: 0, trailers: undefined, receivedAtMs: 0, settled: true,
}) as Pending;

/**
 * Reads a unary gRPC request's body (its one message) to key on it, then
 * hands the same bytes on to the upstream. Past `max` bytes the call is not
 * cached (undefined) and the body goes on as a stream: what was read, then
 * the rest.
 */
function readMessage(ds: Downstream, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const src = ds.rawBody;
    const chunks: Buffer[] = [];
    let n = 0;
    let done = false;
    const stop = (): void => {
      done = true;
      src.off('data', onData);
      src.off('end', onEnd);
    };
    const onData = (c: Buffer): void => {
      n += c.length;
      chunks.push(c);
      if (n > max) {
        stop();
        src.pause();
        ds.replaceRequestBody(Readable.from(rest(chunks, src), { objectMode: false }));
        resolve(undefined);
      }
    };
    const onEnd = (): void => {
      if (done) return;
      stop();
      const all = Buffer.concat(chunks, n);
      ds.replaceRequestBody(all);
      resolve(all);
    };
    src.on('data', onData);
    src.once('end', onEnd);
    src.once('error', () => {
      if (done) return;
      stop();
      resolve(undefined);
    });
  });
}

async function* rest(first: Buffer[], src: Readable): AsyncGenerator<Buffer> {
  yield* first;
  for await (const c of src) yield c as Buffer;
}

import { expect } from 'chai';
import { etagMatches, freshnessLifetimeMs, notModifiedSince, parseCacheControl, requestRules, staleAllowed, unstorableReason, varyNames } from '../../../src/proxy/filters/cache/freshness.js';
import { grpcTtlMs, httpDecision, refreshed, retentionMs } from '../../../src/proxy/filters/cache/policy.js';
import { Coalescer } from '../../../src/proxy/filters/cache/coalesce.js';
import { decodeRecord, encodeRecord, type CachedResponse } from '../../../src/proxy/filters/cache/storage.js';
import { MemoryStorage } from '../../../src/proxy/filters/cache/memory-storage.js';
import { grpcKey, httpKey, varyKey } from '../../../src/proxy/filters/cache/key.js';

const NOW = Date.parse('2026-12-01T00:00:00Z');

function entry(over: Partial<CachedResponse> = {}): CachedResponse {
  return { kind: 'response', status: 200, headers: { 'content-type': 'text/plain' }, body: Buffer.from('hello'), storedAtMs: NOW, initialAgeMs: 0, freshMs: 10_000, swrMs: 0, sieMs: 0, ...over };
}

/** RFC 9111 rules of the cache filter, pure. */
describe('cache: RFC 9111 rules', () => {
  it('Cache-Control parsing: case, quotes, repeated directives (first wins), lists', () => {
    const cc = parseCacheControl(['Max-Age=60, private="set-cookie"', 'max-age=5, no-cache']);
    expect([...cc]).to.deep.equal([['max-age', '60'], ['private', 'set-cookie'], ['no-cache', '']]);
  });

  it('freshness lifetime: s-maxage over max-age over Expires − Date; no-cache is 0; invalid Expires is expired; none: undefined', () => {
    expect(freshnessLifetimeMs(parseCacheControl('max-age=60, s-maxage=5'), {}, NOW)).to.equal(5000);
    expect(freshnessLifetimeMs(parseCacheControl('max-age=60'), { expires: 'Tue, 01 Dec 2026 01:00:00 GMT' }, NOW)).to.equal(60_000);
    expect(freshnessLifetimeMs(parseCacheControl(undefined), { expires: 'Tue, 01 Dec 2026 00:01:40 GMT', date: 'Tue, 01 Dec 2026 00:00:00 GMT' }, 0)).to.equal(100_000);
    expect(freshnessLifetimeMs(parseCacheControl(undefined), { expires: '0' }, NOW)).to.equal(0);
    expect(freshnessLifetimeMs(parseCacheControl('no-cache, max-age=60'), {}, NOW)).to.equal(0);
    expect(freshnessLifetimeMs(parseCacheControl('public'), {}, NOW)).to.equal(undefined);
  });

  it('storability: statuses, no-store, private, Vary: *, Set-Cookie; no freshness is not stored', () => {
    expect(unstorableReason(200, parseCacheControl('no-store'), {})).to.equal('no-store');
    expect(unstorableReason(200, parseCacheControl('private'), {})).to.equal('private');
    expect(unstorableReason(302, parseCacheControl('max-age=5'), {})).to.equal('status');
    expect(unstorableReason(404, parseCacheControl('max-age=5'), {})).to.equal(undefined);
    expect(unstorableReason(200, parseCacheControl('max-age=5'), { vary: 'Accept, *' })).to.equal('vary-star');
    expect(httpDecision(200, { 'cache-control': 'max-age=5', 'set-cookie': 'a=b' }, NOW, undefined)).to.deep.equal({ store: false, reason: 'set-cookie' });
    expect(httpDecision(200, {}, NOW, undefined)).to.deep.equal({ store: false, reason: 'no-freshness' });
    expect(httpDecision(200, {}, NOW, 3000)).to.deep.include({ store: true, freshMs: 3000 });
    expect(httpDecision(200, { 'cache-control': 'max-age=5, stale-while-revalidate=30, stale-if-error=60', vary: 'Accept-Language, accept' }, NOW, undefined)).to.deep.equal({
      store: true, freshMs: 5000, swrMs: 30_000, sieMs: 60_000, vary: ['accept', 'accept-language'],
    });
    // must-revalidate (and s-maxage, which implies proxy-revalidate) forbid stale use.
    expect(httpDecision(200, { 'cache-control': 'max-age=5, must-revalidate, stale-if-error=60' }, NOW, undefined)).to.deep.include({ sieMs: 0 });
    expect(staleAllowed(parseCacheControl('s-maxage=5'))).to.equal(false);
    expect(varyNames('*')).to.equal('*');
  });

  it('request directives: no-store, no-cache (and Pragma), max-age, min-fresh, max-stale', () => {
    expect(requestRules({ 'cache-control': 'no-store' }).noStore).to.equal(true);
    expect(requestRules({ pragma: 'no-cache' }).noCache).to.equal(true);
    expect(requestRules({ 'cache-control': 'max-age=3, min-fresh=2, max-stale' })).to.deep.equal({ noStore: false, noCache: false, maxAgeMs: 3000, minFreshMs: 2000, maxStaleMs: Infinity });
  });

  it('validators: weak If-None-Match comparison, lists and *; If-Modified-Since', () => {
    expect(etagMatches('W/"a", "b"', '"a"')).to.equal(true);
    expect(etagMatches('"c"', '"a"')).to.equal(false);
    expect(etagMatches('*', '"a"')).to.equal(true);
    expect(etagMatches('"a"', undefined)).to.equal(false);
    expect(notModifiedSince('Tue, 01 Dec 2026 00:00:00 GMT', 'Mon, 30 Nov 2026 00:00:00 GMT')).to.equal(true);
    expect(notModifiedSince('Mon, 30 Nov 2026 00:00:00 GMT', 'Tue, 01 Dec 2026 00:00:00 GMT')).to.equal(false);
  });

  it('gRPC lifetime: method entry, then x-outrigger-cache-ttl, then defaultTtl; no-store in metadata forbids', () => {
    expect(grpcTtlMs(2000, { 'x-outrigger-cache-ttl': '9' }, 5000)).to.equal(2000);
    expect(grpcTtlMs(undefined, { 'x-outrigger-cache-ttl': '9' }, 5000)).to.equal(9000);
    expect(grpcTtlMs(0, {}, 5000)).to.equal(5000);
    expect(grpcTtlMs(undefined, {}, 0)).to.equal(undefined);
    expect(grpcTtlMs(2000, { 'cache-control': 'no-store' }, 5000)).to.equal(undefined);
  });

  it('a 304 refreshes the entry: its headers merged, freshness recomputed, the body and length kept', () => {
    const r = refreshed(entry({ headers: { 'content-length': '5', etag: '"a"', 'cache-control': 'max-age=10' } }), { 'cache-control': 'max-age=30', etag: '"a"' }, NOW + 50_000);
    expect([r.storedAtMs, r.freshMs, r.headers['content-length'], r.body.toString()]).to.deep.equal([NOW + 50_000, 30_000, '5', 'hello']);
    expect(retentionMs(r)).to.equal(30_000 + 60_000);
  });

  it('records survive the Redis wire form byte for byte', () => {
    const r = entry({ body: Buffer.from([0, 1, 2, 255]), trailers: { 'grpc-status': '0' } });
    expect(decodeRecord(encodeRecord(r))).to.deep.equal(r);
    expect(decodeRecord(encodeRecord({ kind: 'vary', names: ['accept'] }))).to.deep.equal({ kind: 'vary', names: ['accept'] });
    expect(decodeRecord(Buffer.from([0, 0]))).to.equal(undefined);
  });

  it('keys: documented shapes, principal and Vary suffixes', () => {
    expect(httpKey('p:', 'API.test', '/a?b=1', undefined)).to.equal('p:http:api.test/a?b=1');
    expect(httpKey('p:', 'a', '/x', 'iss/sub')).to.equal('p:http:a/x|p:iss/sub');
    expect(grpcKey('p:', 'a', '/pkg.S/M', Buffer.from('m'), undefined)).to.match(/^p:grpc:a\/pkg\.S\/M:[A-Za-z0-9_-]{43}$/);
    expect(varyKey('k', ['accept'], { accept: 'x' })).to.not.equal(varyKey('k', ['accept'], { accept: 'y' }));
  });

  it('memory storage: byte budget evicts least recently used (counted), TTL on the injected clock, purge by prefix', async () => {
    let now = 1000; // lru-cache treats a start time of 0 as "no TTL"
    let evicted = 0;
    const m = new MemoryStorage(1000, () => now, () => evicted++);
    const big = (n: number) => entry({ body: Buffer.alloc(n) });
    await m.set('a', big(300), 1000);
    await m.set('b', big(300), 1000);
    await m.get('a');
    await m.set('c', big(300), 1000);
    expect([await m.get('a'), await m.get('b'), await m.get('c')].map((x) => x !== undefined)).to.deep.equal([true, false, true]);
    expect(evicted).to.equal(1);
    now = 2001;
    expect(await m.get('a')).to.equal(undefined);
    await m.set('x:1', big(1), 1000);
    await m.set('x:2', big(1), 1000);
    await m.set('y:1', big(1), 1000);
    expect(await m.purge('x:')).to.equal(2);
    expect(await m.get('y:1')).to.not.equal(undefined);
  });

  it('coalescer: the first joins as leader, the rest wait for its outcome', async () => {
    const c = new Coalescer();
    expect(c.join('k')).to.equal(undefined);
    const w = c.join('k')!;
    expect(c.inFlight('k')).to.equal(true);
    c.settle('k', entry());
    expect((await w)?.body.toString()).to.equal('hello');
    expect(c.inFlight('k')).to.equal(false);
  });
});

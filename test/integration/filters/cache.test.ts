import { expect } from 'chai';
import http from 'node:http';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { request } from 'undici';
import { BookstoreService, GetShelfRequestSchema, ShelfSchema, type GetShelfRequest, type CreateShelfRequest } from '../../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { serviceDefinitionFor } from '../../../examples/bookstore/grpc-service.js';
import { bookstoreClient, type BookstoreClient } from '../../support/bookstore-client.js';
import { cluster, listener } from '../../support/config-docs.js';
import { FakeClock } from '../../support/fake-clock.js';
import { RedisServer, freePort } from '../../support/redis-server.js';
import { startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, BOOKSTORE_SVC, baseUrl, grpcCluster, hosts, transcodeHost } from '../../support/transcode-harness.js';
import { waitFor } from '../../support/wait.js';
import { h2Request } from '../../support/traffic-backend.js';
import { encodeFrame, FrameReader } from '../../../src/core/grpc-framing.js';
import { metricValue } from '../../support/prom-text.js';
import { compressingServer } from '../../support/compressing-grpc.js';

/**
 * An HTTP/1.1 origin whose answers the tests choose by path, counting what
 * reaches it (what the cache saved is what it never saw).
 */
class Origin {
  readonly calls = new Map<string, number>();
  readonly conditional: string[] = [];
  failing = false;
  /** Paths whose answers wait for `release()`. */
  readonly hold = new Set<string>(['/slow']);
  private held: (() => void)[] = [];
  server!: http.Server;
  port = 0;

  count(path: string): number {
    return this.calls.get(path) ?? 0;
  }

  /** Lets the held `/slow` answers go. */
  release(): void {
    for (const f of this.held.splice(0)) f();
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      const n = (this.calls.get(path) ?? 0) + 1;
      this.calls.set(path, n);
      const inm = req.headers['if-none-match'];
      if (inm !== undefined) this.conditional.push(`${path} ${String(inm)}`);
      const send0 = (status: number, headers: Record<string, string>, body: string): void => {
        res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...headers });
        res.end(body);
      };
      const send = (status: number, headers: Record<string, string>, body: string): void => {
        if (this.hold.has(path)) this.held.push(() => send0(status, headers, body));
        else send0(status, headers, body);
      };
      switch (path) {
        case '/fresh':
          return send(200, { 'cache-control': 'max-age=60', etag: '"e1"', 'last-modified': 'Tue, 01 Dec 2026 00:00:00 GMT' }, `fresh ${n}`);
        case '/nostore':
          return send(200, { 'cache-control': 'no-store, max-age=60' }, `nostore ${n}`);
        case '/private':
          return send(200, { 'cache-control': 'private, max-age=60' }, `private ${n}`);
        case '/nofresh':
          return send(200, {}, `nofresh ${n}`);
        case '/vary':
          return send(200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' }, `lang ${String(req.headers['accept-language'])} ${n}`);
        case '/star':
          return send(200, { 'cache-control': 'max-age=60', vary: '*' }, `star ${n}`);
        case '/reval':
          if (inm === '"r1"') return send(304, { 'cache-control': 'max-age=10', etag: '"r1"' }, '');
          return send(200, { 'cache-control': 'max-age=10', etag: '"r1"' }, `reval ${n}`);
        case '/swr':
          return send(200, { 'cache-control': 'max-age=10, stale-while-revalidate=100' }, `swr ${n}`);
        case '/sie':
          if (this.failing) return send(503, {}, 'down');
          return send(200, { 'cache-control': 'max-age=10, stale-if-error=100' }, `sie ${n}`);
        case '/mustreval':
          if (this.failing) return send(503, {}, 'down');
          return send(200, { 'cache-control': 'max-age=10, stale-if-error=100, must-revalidate' }, `mr ${n}`);
        case '/big':
          return send(200, { 'cache-control': 'max-age=60' }, 'x'.repeat(4096));
        case '/auth':
          return send(200, { 'cache-control': 'max-age=60' }, `auth ${n}`);
        case '/slow':
          return send(200, { 'cache-control': 'max-age=60' }, `slow ${n}`);
        case '/echo-id':
          // Many backends echo the request id; the stored copy carries the filling request's.
          return send(200, { 'cache-control': 'max-age=60', 'x-request-id': String(req.headers['x-request-id']) }, `echo ${n}`);
        default:
          return send(404, {}, 'no');
      }
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** A Bookstore-shaped gRPC backend counting GetShelf (NO_SIDE_EFFECTS) and CreateShelf (side effects). */
async function startShelves(): Promise<{ port: number; calls: Record<string, number>; server: grpc.Server }> {
  const calls: Record<string, number> = { getShelf: 0, createShelf: 0 };
  const server = new grpc.Server();
  const def = serviceDefinitionFor(BookstoreService);
  const unimplemented: grpc.handleUnaryCall<unknown, unknown> = (_c, cb) => cb({ code: grpc.status.UNIMPLEMENTED });
  const impl: Record<string, grpc.UntypedHandleCall> = {};
  for (const k of Object.keys(def)) impl[k] = unimplemented;
  impl['getShelf'] = ((call: grpc.ServerUnaryCall<GetShelfRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    calls['getShelf']!++;
    if (call.request.shelf === 404n) return cb({ code: grpc.status.NOT_FOUND, details: 'no shelf' });
    const md = new grpc.Metadata();
    if (call.request.shelf === 7n) md.set('x-outrigger-cache-ttl', '5');
    call.sendMetadata(md);
    cb(null, create(ShelfSchema, { id: call.request.shelf, theme: `theme ${calls['getShelf']}` }));
  }) as grpc.UntypedHandleCall;
  impl['createShelf'] = ((call: grpc.ServerUnaryCall<CreateShelfRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    calls['createShelf']!++;
    cb(null, create(ShelfSchema, { id: 1n, theme: `${call.request.shelf?.theme ?? ''} ${calls['createShelf']}` }));
  }) as grpc.UntypedHandleCall;
  server.addService(def, impl);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { port, calls, server };
}

/**
 * The cache filter through real sockets, in memory and on a real
 * redis-server: hit / miss / 304 / revalidation / stale-while-revalidate /
 * stale-if-error / Vary / no-store / private, coalescing counted at the
 * origin, gRPC NO_SIDE_EFFECTS methods cached and side-effecting ones not,
 * a REST-transcoded GET, and the admin purge. Time moves on the injected clock.
 */
describe('filters: cache', function () {
  this.timeout(20000);
  let redis: RedisServer;
  let redisDir: string;

  before(async () => {
    redisDir = await mkdtemp(join(tmpdir(), 'outrigger-cache-redis-'));
    redis = await RedisServer.start(redisDir);
  });
  after(async () => {
    await redis?.stop();
    await rm(redisDir, { recursive: true, force: true });
  });

  for (const kind of ['memory', 'redis'] as const) {
    describe(kind, () => {
      let origin: Origin;
      let shelves: Awaited<ReturnType<typeof startShelves>>;
      let sc: TestSidecar;
      let clock: FakeClock;
      let base: string;
      let client: BookstoreClient;

      before(async () => {
        origin = await new Origin().start();
        shelves = await startShelves();
        clock = new FakeClock();
        const storage = kind === 'memory' ? { memory: { maxBytes: 1 << 20 } } : { redis: { url: redis.url } };
        const cache = {
          ...storage,
          keyPrefix: `t:${kind}:`,
          maxBodyBytes: 1024,
          descriptorBin: BOOKSTORE_DESCRIPTOR,
          defaultTtl: '20s',
          grpcMethods: [{ method: `${BOOKSTORE_SVC}/*`, ttl: '0s' }],
        };
        sc = await startTestSidecar(
          [
            listener('main', { httpFilters: [{ cache }] }),
            hosts('main', [
              { name: 'app', domains: ['app.test'], routes: [{ name: 'app', match: { prefix: '/' }, route: { cluster: 'origin' } }] },
              { name: 'grpc', domains: ['grpc.test'], routes: [{ name: 'grpc', match: { prefix: '/' }, route: { cluster: 'shelves' } }] },
              // The route's transcoding descriptors tell the idempotency here: the override has no descriptorBin.
              {
                ...(transcodeHost('store', ['store.test'], 'shelves', { descriptorBin: BOOKSTORE_DESCRIPTOR }) as object),
                filters: { cache: { cache: { ...cache, descriptorBin: undefined } } },
              },
            ]),
            cluster('origin', [origin.port], 'UPSTREAM_PROTOCOL_HTTP1'),
            grpcCluster('shelves', shelves.port),
          ],
          { clock },
        );
        base = baseUrl(sc);
        client = bookstoreClient(`127.0.0.1:${sc.port()}`, { 'grpc.default_authority': 'grpc.test' });
      });
      after(async () => {
        client?.raw.close();
        await sc?.close();
        await origin?.close();
        shelves?.server.forceShutdown();
      });

      const get = async (path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') => {
        const r = await request(`${base}${path}`, { method, headers: { host: 'app.test', ...headers } });
        return { status: r.statusCode, headers: r.headers, text: await r.body.text() };
      };

      const storedBytes = async () => metricValue(await sc.metrics(), 'outrigger_cache_stored_bytes_total', { filter: 'cache' }) ?? 0;
      /** Runs `f`, then waits until the answer it caused is written to storage. */
      const stored = async <T>(f: () => Promise<T>): Promise<T> => {
        const b0 = await storedBytes();
        const r = await f();
        await waitFor(async () => (await storedBytes()) > b0, 'the entry stored', 15_000);
        return r;
      };
      /** A GET whose answer is stored: resolves once the entry is written (Redis: a round trip after the client has its answer). */
      const getStored = async (path: string, headers: Record<string, string> = {}) => {
        const b0 = await storedBytes();
        const r = await get(path, headers);
        await waitFor(async () => (await storedBytes()) > b0, `${path} stored`, 15_000);
        return r;
      };

      it('miss then hit with Age; HEAD from the GET entry; no-store, private, no explicit freshness and Vary: * never stored', async () => {
        const a = await getStored('/fresh');
        expect([a.status, a.text, a.headers['x-outrigger-cache']]).to.deep.equal([200, 'fresh 1', 'miss']);
        clock.advance(5000);
        const b = await get('/fresh');
        expect([b.status, b.text, b.headers['x-outrigger-cache'], b.headers['age'], b.headers['etag']]).to.deep.equal([200, 'fresh 1', 'hit', '5', '"e1"']);
        const h = await get('/fresh', {}, 'HEAD');
        expect([h.status, h.text, h.headers['x-outrigger-cache'], h.headers['content-length']]).to.deep.equal([200, '', 'hit', '7']);
        expect(origin.count('/fresh')).to.equal(1);
        for (const p of ['/nostore', '/private', '/nofresh', '/star']) {
          await get(p);
          const again = await get(p);
          expect(again.headers['x-outrigger-cache'], p).to.equal('miss');
          expect(origin.count(p), p).to.equal(2);
        }
        // A request's own no-store bypasses the cache; no-cache goes to the origin (and refreshes the entry).
        expect((await get('/fresh', { 'cache-control': 'no-store' })).headers['x-outrigger-cache']).to.equal(undefined);
        expect(origin.count('/fresh')).to.equal(2);
      });

      it("a hit carries its own request's x-request-id, not the one the origin echoed for the request that filled the entry", async () => {
        const a = await getStored('/echo-id');
        const b = await get('/echo-id');
        expect([a.headers['x-outrigger-cache'], b.headers['x-outrigger-cache'], b.text]).to.deep.equal(['miss', 'hit', 'echo 1']);
        const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
        expect(a.headers['x-request-id']).to.match(uuid);
        expect(b.headers['x-request-id']).to.match(uuid);
        expect(b.headers['x-request-id']).to.not.equal(a.headers['x-request-id']);
        expect(origin.count('/echo-id')).to.equal(1);
      });

      it('If-None-Match and If-Modified-Since are answered 304 from the cache', async () => {
        await get('/fresh');
        const before = origin.count('/fresh');
        const a = await get('/fresh', { 'if-none-match': 'W/"e1"' });
        expect([a.status, a.text, a.headers['etag'], a.headers['x-outrigger-cache']]).to.deep.equal([304, '', '"e1"', 'hit']);
        const b = await get('/fresh', { 'if-modified-since': 'Wed, 02 Dec 2026 00:00:00 GMT' });
        expect(b.status).to.equal(304);
        const c = await get('/fresh', { 'if-none-match': '"other"' });
        expect([c.status, c.text]).to.deep.equal([200, 'fresh 1']);
        expect(origin.count('/fresh')).to.equal(before);
      });

      it('a stale entry is revalidated with its ETag; the origin 304 refreshes it', async () => {
        expect((await getStored('/reval')).text).to.equal('reval 1');
        clock.advance(11_000);
        const b0 = await storedBytes();
        const r = await get('/reval');
        expect([r.status, r.text, r.headers['x-outrigger-cache']]).to.deep.equal([200, 'reval 1', 'hit']);
        await waitFor(async () => (await storedBytes()) > b0, 'the refreshed entry stored');
        expect(origin.conditional).to.include('/reval "r1"');
        expect(origin.count('/reval')).to.equal(2);
        // Refreshed: fresh again for max-age, without asking the origin.
        clock.advance(5000);
        expect((await get('/reval')).headers['x-outrigger-cache']).to.equal('hit');
        expect(origin.count('/reval')).to.equal(2);
      });

      it('stale-while-revalidate: one request refreshes, those meanwhile are served stale', async () => {
        expect((await getStored('/swr')).text).to.equal('swr 1');
        clock.advance(20_000);
        origin.hold.add('/swr');
        const refresh = get('/swr');
        await waitFor(() => origin.count('/swr') === 2, 'the refresh at the origin');
        const meanwhile = await get('/swr');
        expect([meanwhile.text, meanwhile.headers['x-outrigger-cache'], meanwhile.headers['age']]).to.deep.equal(['swr 1', 'stale', '20']);
        origin.hold.delete('/swr');
        origin.release();
        const b0 = await storedBytes();
        const r = await refresh;
        expect([r.text, r.headers['x-outrigger-cache']]).to.deep.equal(['swr 2', 'miss']);
        await waitFor(async () => (await storedBytes()) > b0, 'the refreshed entry stored');
        expect((await get('/swr')).headers['x-outrigger-cache']).to.equal('hit');
        expect(origin.count('/swr')).to.equal(2);
      });

      it('stale-if-error: the origin failing serves the stale copy; must-revalidate forbids it', async () => {
        expect((await getStored('/sie')).text).to.equal('sie 1');
        expect((await getStored('/mustreval')).text).to.equal('mr 1');
        clock.advance(15_000);
        origin.failing = true;
        try {
          const s = await get('/sie');
          expect([s.status, s.text, s.headers['x-outrigger-cache']]).to.deep.equal([200, 'sie 1', 'stale']);
          const m = await get('/mustreval');
          expect([m.status, m.headers['x-outrigger-cache']]).to.deep.equal([503, 'miss']);
        } finally {
          origin.failing = false;
        }
      });

      it('Vary: the key includes the varied request headers', async () => {
        const en = await getStored('/vary', { 'accept-language': 'en' });
        const de = await getStored('/vary', { 'accept-language': 'de' });
        expect([en.text, de.text]).to.deep.equal(['lang en 1', 'lang de 2']);
        const en2 = await get('/vary', { 'accept-language': 'en' });
        const de2 = await get('/vary', { 'accept-language': 'de' });
        expect([en2.text, en2.headers['x-outrigger-cache'], de2.text, de2.headers['x-outrigger-cache']]).to.deep.equal(['lang en 1', 'hit', 'lang de 2', 'hit']);
        expect(origin.count('/vary')).to.equal(2);
      });

      it('a body over maxBodyBytes streams to the client whole and is not stored', async () => {
        const a = await get('/big');
        const b = await get('/big');
        expect([a.text.length, b.text.length, b.headers['x-outrigger-cache']]).to.deep.equal([4096, 4096, 'miss']);
        expect(origin.count('/big')).to.equal(2);
      });

      it('requests with authorization are not cached (cacheAuthorized is off)', async () => {
        await get('/auth', { authorization: 'Bearer x' });
        const b = await get('/auth', { authorization: 'Bearer x' });
        expect(b.headers['x-outrigger-cache']).to.equal(undefined);
        expect(origin.count('/auth')).to.equal(2);
      });

      it('coalescing: 10 concurrent misses make one upstream call', async () => {
        const waited = async () => metricValue(await sc.metrics(), 'outrigger_cache_coalesced_total', { filter: 'cache' }) ?? 0;
        const w0 = await waited();
        const all = Promise.all(Array.from({ length: 10 }, () => get('/slow')));
        await waitFor(async () => origin.count('/slow') === 1 && (await waited()) - w0 === 9, 'nine waiters');
        origin.release();
        const rs = await all;
        expect(origin.count('/slow')).to.equal(1);
        expect(new Set(rs.map((r) => r.text))).to.deep.equal(new Set(['slow 1']));
        expect(rs.filter((r) => r.headers['x-outrigger-cache'] === 'miss')).to.have.length(1);
      });

      it('gRPC: a NO_SIDE_EFFECTS unary method is cached on its request message; a side-effecting one never', async () => {
        const a = await stored(() => client.unary('getShelf', { shelf: 1n }));
        const b = await client.unary('getShelf', { shelf: 1n });
        // Waited for: a late store of this answer must not be taken for the 7n one's below (whose
        // still-pending store a request would otherwise coalesce onto).
        const c = await stored(() => client.unary('getShelf', { shelf: 2n }));
        expect([a.response.theme, b.response.theme, c.response.theme]).to.deep.equal(['theme 1', 'theme 1', 'theme 2']);
        expect(a.metadata.get('x-outrigger-cache')).to.deep.equal(['miss']);
        expect(b.metadata.get('x-outrigger-cache')).to.deep.equal(['hit']);
        expect(shelves.calls['getShelf']).to.equal(2);
        // The backend's x-outrigger-cache-ttl (5 s) beats defaultTtl (20 s).
        await stored(() => client.unary('getShelf', { shelf: 7n }));
        clock.advance(6000);
        await client.unary('getShelf', { shelf: 7n });
        expect(shelves.calls['getShelf']).to.equal(4);
        // Errors are not cached.
        for (let i = 0; i < 2; i++) await client.unary('getShelf', { shelf: 404n }).catch((e: grpc.ServiceError) => expect(e.code).to.equal(grpc.status.NOT_FOUND));
        expect(shelves.calls['getShelf']).to.equal(6);
        const x = await client.unary('createShelf', { shelf: { theme: 'x' } });
        const y = await client.unary('createShelf', { shelf: { theme: 'x' } });
        expect([x.response.theme, y.response.theme]).to.deep.equal(['x 1', 'x 2']);
        expect(x.metadata.get('x-outrigger-cache')).to.deep.equal([]);
        expect(shelves.calls['createShelf']).to.equal(2);
      });

      it('a gRPC request message over maxBodyBytes is not cached and still reaches the backend whole', async () => {
        const before = shelves.calls['getShelf']!;
        // GetShelfRequest{shelf: 3} plus a 2000-byte unknown field 99 (parsers skip it).
        const msg = Buffer.concat([Buffer.from(toBinary(GetShelfRequestSchema, create(GetShelfRequestSchema, { shelf: 3n }))), Buffer.from([0x9a, 0x06, 0xd0, 0x0f]), Buffer.alloc(2000, 7)]);
        for (let i = 0; i < 2; i++) {
          const r = await h2Request(sc.port(), { ':method': 'POST', ':path': `${BOOKSTORE_SVC}/GetShelf`, ':authority': 'grpc.test', 'content-type': 'application/grpc', te: 'trailers' }, encodeFrame(0, msg));
          expect([r.status, r.headers['x-outrigger-cache']]).to.deep.equal([200, undefined]);
          const frames: Buffer[] = [];
          new FrameReader().each(r.body, (f) => (frames.push(Buffer.from(f.data)), true));
          expect(fromBinary(ShelfSchema, frames[0]!).id).to.equal(3n);
        }
        expect(shelves.calls['getShelf']).to.equal(before + 2);
      });

      it('a REST-transcoded GET is cached (defaultTtl), then purged through the admin API', async () => {
        const before = shelves.calls['getShelf']!;
        const [r1, t1] = await stored(async () => {
          const r = await request(`${base}/v1/shelves/11`, { headers: { host: 'store.test' } });
          return [r, await r.body.json()] as const;
        });
        const r2 = await request(`${base}/v1/shelves/11`, { headers: { host: 'store.test' } });
        const t2 = await r2.body.json();
        expect([r1.headers['x-outrigger-cache'], r2.headers['x-outrigger-cache']]).to.deep.equal(['miss', 'hit']);
        expect(t2).to.deep.equal(t1);
        expect(shelves.calls['getShelf']).to.equal(before + 1);
        const admin = sc.sidecar.adminPort;
        const p = await request(`http://127.0.0.1:${admin}/cache/purge?prefix=${encodeURIComponent('http:store.test/v1/shelves/')}`, { method: 'POST' });
        expect(p.statusCode).to.equal(200);
        expect(((await p.body.json()) as { purged: number }).purged).to.be.greaterThan(0);
        const r3 = await request(`${base}/v1/shelves/11`, { headers: { host: 'store.test' } });
        await r3.body.dump();
        expect(r3.headers['x-outrigger-cache']).to.equal('miss');
        expect(shelves.calls['getShelf']).to.equal(before + 2);
        // Other keys survive a purge of that prefix.
        expect((await get('/fresh')).headers['x-outrigger-cache']).to.be.oneOf(['hit', 'miss']);
      });

      it('Connect GET is cached; gRPC on a transcoding route reads the idempotency from the route descriptors', async () => {
        const before = shelves.calls['getShelf']!;
        const url = `${base}${BOOKSTORE_SVC}/GetShelf?connect=v1&encoding=json&message=${encodeURIComponent('{"shelf":"21"}')}`;
        const c1 = await stored(async () => {
          const r = await request(url, { headers: { host: 'store.test' } });
          return { cache: r.headers['x-outrigger-cache'], json: await r.body.json() };
        });
        const r2 = await request(url, { headers: { host: 'store.test' } });
        expect([c1.cache, r2.headers['x-outrigger-cache']]).to.deep.equal(['miss', 'hit']);
        expect(await r2.body.json()).to.deep.equal(c1.json);
        expect(shelves.calls['getShelf']).to.equal(before + 1);
        const store = bookstoreClient(`127.0.0.1:${sc.port()}`, { 'grpc.default_authority': 'store.test' });
        try {
          const a = await stored(() => store.unary('getShelf', { shelf: 22n }));
          const b = await store.unary('getShelf', { shelf: 22n });
          expect([a.metadata.get('x-outrigger-cache'), b.metadata.get('x-outrigger-cache'), b.response.theme]).to.deep.equal([['miss'], ['hit'], a.response.theme]);
          await store.unary('createShelf', { shelf: { theme: 'y' } });
          const y = await store.unary('createShelf', { shelf: { theme: 'y' } });
          expect(y.metadata.get('x-outrigger-cache')).to.deep.equal([]);
        } finally {
          store.close();
        }
        expect(shelves.calls['getShelf']).to.equal(before + 2);
      });

      it('metrics: hits, misses, stale serves, stored bytes', async () => {
        const m = await sc.metrics();
        expect((metricValue(m, 'outrigger_cache_lookups_total', { filter: 'cache', result: 'hit' })) ?? 0).to.be.greaterThan(0);
        expect((metricValue(m, 'outrigger_cache_lookups_total', { filter: 'cache', result: 'miss' })) ?? 0).to.be.greaterThan(0);
        expect((metricValue(m, 'outrigger_cache_lookups_total', { filter: 'cache', result: 'stale' })) ?? 0).to.be.greaterThan(0);
        expect((metricValue(m, 'outrigger_cache_stored_bytes_total', { filter: 'cache' })) ?? 0).to.be.greaterThan(0);
      });
    });
  }

  describe('cacheAuthorized, and a Redis that is down', () => {
    let origin: Origin;
    let sc: TestSidecar;
    let base: string;
    let deadPort: number;

    before(async () => {
      origin = await new Origin().start();
      deadPort = await freePort();
      const sha = (s: string) => createHash('sha256').update(s).digest('hex');
      sc = await startTestSidecar([
        listener('main', {
          httpFilters: [
            { apiKeys: { keys: [{ name: 'alice', sha256: sha('alice-secret') }, { name: 'bob', sha256: sha('bob-secret') }] } },
            { cache: { memory: {}, cacheAuthorized: true } },
          ],
        }),
        listener('down', { httpFilters: [{ cache: { redis: { url: `redis://127.0.0.1:${deadPort}` } } }] }),
        hosts('main', [{ name: 'app', domains: ['*'], routes: [{ name: 'app', match: { prefix: '/' }, route: { cluster: 'origin' } }] }]),
        cluster('origin', [origin.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      ]);
      base = baseUrl(sc);
    });
    after(async () => {
      await sc?.close();
      await origin?.close();
    });

    const get = async (url: string, headers: Record<string, string>) => {
      const r = await request(url, { headers });
      return { status: r.statusCode, cache: r.headers['x-outrigger-cache'], text: await r.body.text() };
    };

    it('authorized requests are keyed on the principal: each caller has its own entry', async () => {
      const a1 = await get(`${base}/auth`, { 'x-api-key': 'alice-secret', authorization: 'Basic x' });
      const b1 = await get(`${base}/auth`, { 'x-api-key': 'bob-secret', authorization: 'Basic x' });
      const a2 = await get(`${base}/auth`, { 'x-api-key': 'alice-secret', authorization: 'Basic y' });
      const b2 = await get(`${base}/auth`, { 'x-api-key': 'bob-secret' });
      expect([a1.text, b1.text, a2.text, b2.text]).to.deep.equal(['auth 1', 'auth 2', 'auth 1', 'auth 2']);
      expect([a1.cache, b1.cache, a2.cache, b2.cache]).to.deep.equal(['miss', 'miss', 'hit', 'hit']);
      expect(origin.count('/auth')).to.equal(2);
    });

    it('Redis unreachable: every request is a miss served by the origin, with one log line', async () => {
      const down = baseUrl(sc, 'http', 'down');
      for (let i = 0; i < 3; i++) {
        const r = await get(`${down}/fresh`, { host: 'app.test' });
        expect([r.status, r.cache]).to.deep.equal([200, 'miss']);
      }
      expect(origin.count('/fresh')).to.equal(3);
      await waitFor(() => sc.logs.some((l) => l['msg'] === 'cache redis unreachable: requests are misses until it is back'), 'the log line');
      expect(sc.logs.filter((l) => l['msg'] === 'cache redis unreachable: requests are misses until it is back')).to.have.length(1);
    });
  });

  it('a gRPC answer compressed for its caller (grpc-encoding) is not stored; an identity one is', async () => {
    const backend = await compressingServer('gzip');
    const clock = new FakeClock();
    const sc = await startTestSidecar(
      [
        listener('main', { httpFilters: [{ cache: { memory: { maxBytes: 1 << 20 }, descriptorBin: BOOKSTORE_DESCRIPTOR, defaultTtl: '20s', grpcMethods: [{ method: `${BOOKSTORE_SVC}/*` }] } }] }),
        hosts('main', [{ name: 'g', domains: ['*'], routes: [{ name: 'g', match: { prefix: '/' }, route: { cluster: 'gz' } }] }]),
        grpcCluster('gz', backend.port),
      ],
      { clock },
    );
    try {
      const call = (acceptGzip: boolean) =>
        h2Request(
          sc.port(),
          {
            ':method': 'POST',
            ':path': `${BOOKSTORE_SVC}/GetShelf`,
            'content-type': 'application/grpc',
            te: 'trailers',
            ...(acceptGzip ? { 'grpc-accept-encoding': 'gzip' } : {}),
          },
          encodeFrame(0, Buffer.from(toBinary(GetShelfRequestSchema, create(GetShelfRequestSchema, { shelf: 3n })))),
        );
      const a = await call(true);
      const b = await call(true);
      expect([a.headers['grpc-encoding'], a.headers['x-outrigger-cache']]).to.deep.equal(['gzip', 'miss']);
      expect([b.headers['grpc-encoding'], b.headers['x-outrigger-cache']]).to.deep.equal(['gzip', 'miss']);
      expect(backend.accepted).to.have.length(2);
      // An identity answer is stored, and a caller that never asked for gzip gets it from the cache.
      await call(false);
      await waitFor(async () => ((metricValue(await sc.metrics(), 'outrigger_cache_stored_bytes_total', { filter: 'cache' }) ?? 0) > 0), 'stored');
      const d = await call(false);
      expect([d.headers['grpc-encoding'], d.headers['x-outrigger-cache']]).to.deep.equal(['identity', 'hit']);
      expect(backend.accepted).to.have.length(3);
      let flags = -1;
      new FrameReader().each(d.body, (f) => ((flags = f.flags), true));
      expect(flags).to.equal(0);
    } finally {
      await sc.close();
      backend.server.close();
    }
  });
});

import { expect } from 'chai';
import http from 'node:http';
import { once } from 'node:events';
import zlib from 'node:zlib';
import * as grpcJs from '@grpc/grpc-js';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../../examples/bookstore/server.js';
import { bookstoreClient, type BookstoreClient } from '../../support/bookstore-client.js';
import { cluster, listener } from '../../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, BOOKSTORE_SVC, baseUrl, grpcCluster, hosts, transcodeHost } from '../../support/transcode-harness.js';
import { bigJson, h2Request, RecordingBackend } from '../../support/traffic-backend.js';
import { ZSTD_AVAILABLE } from '../../../src/proxy/filters/compression/compression-filter.js';
import { negotiate } from '../../../src/proxy/filters/compression/negotiate.js';
import { waitFor } from '../../support/wait.js';

type Z = typeof zlib & { zstdDecompressSync?: (b: Buffer) => Buffer };

/** Decodes a response body by its Content-Encoding, as a browser would. */
function decode(encoding: unknown, body: Buffer): Buffer {
  switch (encoding) {
    case 'gzip':
      return zlib.gunzipSync(body);
    case 'br':
      return zlib.brotliDecompressSync(body);
    case 'zstd':
      return (zlib as Z).zstdDecompressSync!(body);
    default:
      return body;
  }
}

/**
 * compression through real sockets: gzip / br (/ zstd where Node has it)
 * round trips decoded by the test, q-value negotiation, what is never
 * compressed, streaming (each chunk arrives before the next is written),
 * HTTP/2, REST and Connect answers, gRPC left to grpc-encoding, and request
 * bodies decoded with the zip-bomb guard.
 */
describe('filters: compression', function () {
  let rec: RecordingBackend;
  let store: BookstoreServer;
  let sc: TestSidecar;
  let base: string;
  let grpc: BookstoreClient;
  const BIG = bigJson();

  before(async () => {
    rec = await new RecordingBackend().start();
    store = await startBookstore();
    const app = {
      name: 'app',
      domains: ['app.test'],
      routes: [
        {
          name: 'upload',
          match: { prefix: '/upload' },
          route: { cluster: 'rec' },
          filters: { compression: { compression: { requestDecompression: { enabled: true, maxBytes: 65536 } } } },
        },
        { name: 'app', match: { prefix: '/' }, route: { cluster: 'rec' } },
      ],
    };
    const storeHost = {
      ...(transcodeHost('store', ['store.test'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR }) as object),
      filters: { compression: { compression: { minContentLength: 0 } } },
    };
    sc = await startTestSidecar([
      listener('main', { httpFilters: [{ compression: {} }] }),
      hosts('main', [app, storeHost]),
      grpcCluster('store', store.port),
      cluster('rec', [rec.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    base = baseUrl(sc);
    grpc = bookstoreClient(`127.0.0.1:${sc.port()}`, { 'grpc.default_authority': 'store.test' });
  });
  after(async () => {
    grpc?.raw.close();
    await sc?.close();
    await store?.close();
    await rec?.close();
  });

  const get = async (path: string, acceptEncoding?: string, host = 'app.test', method: 'GET' | 'HEAD' = 'GET') => {
    const r = await request(`${base}${path}`, { method, headers: { host, ...(acceptEncoding !== undefined ? { 'accept-encoding': acceptEncoding } : {}) } });
    const body = Buffer.from(await r.body.arrayBuffer());
    return { status: r.statusCode, headers: r.headers, body };
  };

  it('q-value negotiation (unit): highest q wins, ties to the server order, q=0 and identity refuse', () => {
    const offered = ['br', 'gzip'] as const;
    expect(negotiate('gzip, br', offered)).to.equal('br');
    expect(negotiate('gzip;q=1, br;q=0.5', offered)).to.equal('gzip');
    expect(negotiate('br;q=0, gzip', offered)).to.equal('gzip');
    expect(negotiate('*;q=0.1', offered)).to.equal('br');
    expect(negotiate('*, br;q=0', offered)).to.equal('gzip');
    expect(negotiate('identity', offered)).to.equal(undefined);
    expect(negotiate('gzip;q=0, br;q=0', offered)).to.equal(undefined);
    expect(negotiate('x-gzip', offered)).to.equal('gzip');
    expect(negotiate(undefined, offered)).to.equal(undefined);
    expect(negotiate('zstd', ['br', 'gzip'])).to.equal(undefined);
  });

  for (const [ae, want] of [
    ['gzip', 'gzip'],
    ['br', 'br'],
    ['gzip;q=0.5, br;q=0.9', 'br'],
    ['br;q=0.2, gzip;q=0.8', 'gzip'],
  ] as const) {
    it(`HTTP/1.1 Accept-Encoding: ${ae} → ${want}, decoded to the original; Vary, no Content-Length, weak ETag`, async () => {
      const r = await get('/big', ae);
      expect(r.status).to.equal(200);
      expect(r.headers['content-encoding']).to.equal(want);
      expect(r.headers['content-length']).to.equal(undefined);
      expect(r.headers['vary']).to.equal('Accept-Encoding');
      expect(r.headers['etag']).to.equal('W/"v1"');
      expect(r.body.length).to.be.lessThan(BIG.length / 4);
      expect(decode(want, r.body).toString()).to.equal(BIG);
    });
  }

  it(`zstd ${ZSTD_AVAILABLE ? 'round trip' : 'is not offered on this Node (node:zlib has no zstd before 22.15)'}`, async () => {
    const r = await get('/big', 'zstd');
    if (!ZSTD_AVAILABLE) {
      expect(r.headers['content-encoding']).to.equal(undefined);
      expect(r.body.toString()).to.equal(BIG);
      return;
    }
    expect(r.headers['content-encoding']).to.equal('zstd');
    expect(decode('zstd', r.body).toString()).to.equal(BIG);
  });

  it('left alone: no Accept-Encoding, small bodies, other types, already encoded, no-transform, 206, HEAD', async () => {
    const plain = await get('/big');
    expect(plain.headers['content-encoding']).to.equal(undefined);
    expect(plain.headers['vary'], 'the answer still depends on Accept-Encoding').to.equal('Accept-Encoding');
    expect(plain.body.toString()).to.equal(BIG);
    expect((await get('/small', 'gzip')).headers['content-encoding'], '< 1 KiB').to.equal(undefined);
    expect((await get('/image', 'gzip')).headers['content-encoding'], 'image/png').to.equal(undefined);
    const pre = await get('/pre-encoded', 'br');
    expect(pre.headers['content-encoding'], 'not encoded twice').to.equal('gzip');
    expect((await get('/no-transform', 'gzip')).headers['content-encoding']).to.equal(undefined);
    const range = await get('/range', 'gzip');
    expect(range.status).to.equal(206);
    expect(range.headers['content-encoding']).to.equal(undefined);
    const head = await get('/big', 'gzip', 'app.test', 'HEAD');
    expect(head.headers['content-encoding']).to.equal(undefined);
    expect(head.headers['vary']).to.equal('Accept-Encoding');
  });

  it('streams: each event arrives (decoded) before the backend writes the next one', async () => {
    const req = http.request({ host: '127.0.0.1', port: sc.port(), path: '/stream', headers: { host: 'app.test', 'accept-encoding': 'gzip' } });
    req.end();
    const response = once(req, 'response') as Promise<[http.IncomingMessage]>;
    await waitFor(() => rec.seen.some((s) => s.url === '/stream'), 'the backend sees the request');
    // Node's HTTP/1.1 server sends a head with the first body bytes: the first event brings it.
    rec.release();
    const [res] = await response;
    expect(res.headers['content-encoding']).to.equal('gzip');
    const gunzip = zlib.createGunzip();
    res.pipe(gunzip);
    const ended = once(gunzip, 'end');
    let text = '';
    gunzip.on('data', (c: Buffer) => (text += c.toString()));
    for (let i = 1; i <= 3; i++) {
      if (i > 1) rec.release();
      await waitFor(() => text.includes(`data: event ${i} `), `event ${i} decoded while the response is still open`);
      if (i < 3) expect(text).to.not.include(`event ${i + 1} `);
    }
    await ended;
    expect(text.split('\n\n').filter((e) => e !== '')).to.have.length(3);
  });

  it('HTTP/2 client: br round trip', async () => {
    const r = await h2Request(sc.port(), { ':method': 'GET', ':path': '/big', ':authority': 'app.test', 'accept-encoding': 'br' });
    expect(r.headers['content-encoding']).to.equal('br');
    expect(decode('br', r.body).toString()).to.equal(BIG);
  });

  it('REST and Connect JSON answers are compressed; gRPC is left to grpc-encoding', async () => {
    const rest = await get('/v1/shelves', 'gzip', 'store.test');
    expect(rest.status).to.equal(200);
    expect(rest.headers['content-encoding']).to.equal('gzip');
    expect(JSON.parse(decode('gzip', rest.body).toString()).shelves.length).to.be.greaterThan(0);
    const c = await request(`${base}${BOOKSTORE_SVC}/GetShelf`, {
      method: 'POST',
      headers: { host: 'store.test', 'content-type': 'application/json', 'connect-protocol-version': '1', 'accept-encoding': 'br' },
      body: '{"shelf":"1"}',
    });
    const cb = Buffer.from(await c.body.arrayBuffer());
    expect(c.headers['content-encoding']).to.equal('br');
    expect(JSON.parse(decode('br', cb).toString()).theme).to.equal('Fiction');
    const g = await grpc.unary('getShelf', { shelf: 1n });
    expect(g.response.theme).to.equal('Fiction');
    expect(g.metadata.get('content-encoding')).to.deep.equal([]);
    // A gzip-compressed gRPC call passes through with its own grpc-encoding.
    const gz = bookstoreClient(`127.0.0.1:${sc.port()}`, { 'grpc.default_authority': 'store.test', 'grpc.default_compression_algorithm': grpcJs.compressionAlgorithms.gzip });
    try {
      expect((await gz.unary('getShelf', { shelf: 2n })).response.id).to.equal(2n);
    } finally {
      gz.raw.close();
    }
  });

  it('request decompression: gzip and br uploads reach the upstream decoded (HTTP/1.1 and HTTP/2)', async () => {
    const text = 'hello upload '.repeat(500);
    const r = await request(`${base}/upload/a`, { method: 'POST', headers: { host: 'app.test', 'content-encoding': 'gzip', 'content-type': 'text/plain' }, body: zlib.gzipSync(text) });
    await r.body.dump();
    expect(r.statusCode).to.equal(200);
    let seen = rec.seen.at(-1)!;
    expect(seen.body.toString()).to.equal(text);
    expect(seen.headers['content-encoding']).to.equal(undefined);
    expect(seen.headers['content-length']).to.equal(String(text.length));
    const h2 = await h2Request(sc.port(), { ':method': 'PUT', ':path': '/upload/b', ':authority': 'app.test', 'content-encoding': 'br' }, zlib.brotliCompressSync(text));
    expect(h2.status).to.equal(200);
    seen = rec.seen.at(-1)!;
    expect(seen.url).to.equal('/upload/b');
    expect(seen.body.toString()).to.equal(text);
    const other = await request(`${base}/elsewhere`, { method: 'POST', headers: { host: 'app.test', 'content-encoding': 'gzip' }, body: zlib.gzipSync(text) });
    await other.body.dump();
    expect(rec.seen.at(-1)!.headers['content-encoding'], 'only where the route asks').to.equal('gzip');
  });

  it('a zip bomb is refused with 413 before the upstream sees a byte; a body that does not decode is 400', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(16 * 1024 * 1024));
    expect(bomb.length).to.be.lessThan(65536);
    const n = rec.seen.length;
    const r = await request(`${base}/upload/bomb`, { method: 'POST', headers: { host: 'app.test', 'content-encoding': 'gzip' }, body: bomb });
    const text = await r.body.text();
    expect(r.statusCode).to.equal(413);
    expect(r.headers['x-outrigger-local-reply']).to.equal('RL');
    expect(text).to.match(/decoded body is over 65536 bytes/);
    const h2 = await h2Request(sc.port(), { ':method': 'POST', ':path': '/upload/bomb', ':authority': 'app.test', 'content-encoding': 'br' }, zlib.brotliCompressSync(Buffer.alloc(16 * 1024 * 1024)));
    expect(h2.status).to.equal(413);
    const bad = await request(`${base}/upload/bad`, { method: 'POST', headers: { host: 'app.test', 'content-encoding': 'gzip' }, body: 'not gzip at all' });
    await bad.body.dump();
    expect(bad.statusCode).to.equal(400);
    expect(rec.seen.length).to.equal(n);
  });

  it('metrics: compressed responses and bytes in/out by coding', async () => {
    const m = await sc.metrics();
    expect(m).to.match(/outrigger_compression_responses_total\{coding="gzip"\} [1-9]/);
    const inB = Number(/outrigger_compression_bytes_total\{coding="gzip",direction="in"\} (\d+)/.exec(m)?.[1]);
    const outB = Number(/outrigger_compression_bytes_total\{coding="gzip",direction="out"\} (\d+)/.exec(m)?.[1]);
    expect(inB).to.be.greaterThan(outB);
  });
});

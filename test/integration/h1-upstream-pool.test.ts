import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { deferred, waitFor } from '../support/wait.js';

/** A node:http backend that counts the connections it accepted and those still open. */
interface CountingBackend {
  readonly port: number;
  readonly server: http.Server;
  accepted: number;
  open: number;
  close(): Promise<void>;
}

async function countingBackend(handler: http.RequestListener): Promise<CountingBackend> {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 60_000;
  const b = { server, port: 0, accepted: 0, open: 0, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
  server.on('connection', (s) => {
    b.accepted++;
    b.open++;
    s.once('close', () => b.open--);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.port = (server.address() as AddressInfo).port;
  return b;
}

type PoolView = { openSockets: number; idleSockets: number };

async function poolOf(sc: TestSidecar, name: string): Promise<PoolView> {
  const res = await request(`http://127.0.0.1:${sc.sidecar.adminPort}/clusters`);
  const body = (await res.body.json()) as { clusters: Record<string, { endpoints: { h1?: PoolView }[] }> };
  return body.clusters[name]!.endpoints[0]!.h1 ?? { openSockets: 0, idleSockets: 0 };
}

/** One GET through a fresh (non-pooled) client connection, so only the sidecar's upstream pool is under test. */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

describe('HTTP/1.1 upstream connection pool (undici connections, h1-pool.ts)', function () {
  let sc: TestSidecar | undefined;
  let backend: CountingBackend | undefined;

  afterEach(async () => {
    await sc?.close();
    await backend?.close();
    sc = undefined;
    backend = undefined;
  });

  async function start(handler: http.RequestListener, clusterExtra: Record<string, unknown> = {}): Promise<TestSidecar> {
    backend = await countingBackend(handler);
    sc = await startTestSidecar([listener('main'), routes('main', [prefixRoute('/', 'up')]), cluster('up', [backend.port], 'UPSTREAM_PROTOCOL_HTTP1', clusterExtra)]);
    return sc;
  }

  it('sequential requests reuse one keep-alive connection; /clusters shows it idle between them', async () => {
    const s = await start((req, res) => res.end(`hello ${req.url}`));
    for (let i = 0; i < 5; i++) {
      const r = await get(s.port(), `/r${i}`);
      expect(r).to.deep.equal({ status: 200, body: `hello /r${i}` });
    }
    expect(backend!.accepted).to.equal(1);
    expect(await poolOf(s, 'up')).to.deep.equal({ openSockets: 0, idleSockets: 1 });
  });

  it('concurrent requests each get a connection; at most maxIdleConnections stay open idle after them', async () => {
    const held: http.ServerResponse[] = [];
    const allIn = deferred();
    const s = await start(
      (_req, res) => {
        // The first four are held until all four are in; later ones are answered at once.
        if (held.length === 4) return res.end('later');
        held.push(res);
        if (held.length === 4) allIn.resolve();
      },
      { maxIdleConnections: 2 },
    );
    const answers = [0, 1, 2, 3].map((i) => get(s.port(), `/c${i}`));
    await allIn.promise;
    expect(backend!.accepted).to.equal(4);
    expect(await poolOf(s, 'up')).to.deep.equal({ openSockets: 4, idleSockets: 0 });
    for (const res of held) res.end('done');
    for (const a of await Promise.all(answers)) expect(a).to.deep.equal({ status: 200, body: 'done' });
    // Two kept (maxIdleConnections), two closed by the sidecar.
    await waitFor(() => backend!.open === 2, 'the sidecar to close the connections over maxIdleConnections');
    expect(await poolOf(s, 'up')).to.deep.equal({ openSockets: 0, idleSockets: 2 });
    // The next requests reuse the idle ones.
    await get(s.port(), '/again');
    expect(backend!.accepted).to.equal(4);
  });

  it("an upstream's Connection: close is honoured: the next request opens a new connection and succeeds", async () => {
    let n = 0;
    const s = await start((_req, res) => {
      if (n++ === 0) res.setHeader('connection', 'close');
      res.end(`answer ${n}`);
    });
    expect(await get(s.port(), '/a')).to.deep.equal({ status: 200, body: 'answer 1' });
    expect(await get(s.port(), '/b')).to.deep.equal({ status: 200, body: 'answer 2' });
    expect(backend!.accepted).to.equal(2);
    expect(s.access.map((l) => l.flags)).to.deep.equal([undefined, undefined]);
  });

  it('an idle connection the upstream closed is dropped from the pool, not reused', async () => {
    const s = await start((_req, res) => res.end('ok'));
    expect((await get(s.port(), '/1')).status).to.equal(200);
    expect(await poolOf(s, 'up')).to.deep.equal({ openSockets: 0, idleSockets: 1 });
    backend!.server.closeIdleConnections();
    await waitFor(async () => (await poolOf(s, 'up')).idleSockets === 0, 'the pool to drop the closed connection');
    expect((await get(s.port(), '/2')).status).to.equal(200);
    expect(backend!.accepted).to.equal(2);
  });

  it('streams a chunked request body up and a chunked response with trailers down, neither buffered whole', async () => {
    const firstUp = deferred<string>();
    const firstDown = deferred<string>();
    const s = await start((req, res) => {
      let got = '';
      req.on('data', (c: Buffer) => {
        if (got === '') firstUp.resolve(c.toString());
        got += c.toString();
      });
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
        res.write(`got ${got.length} bytes;`);
        // The rest only once the client has seen the first chunk: the sidecar streams it.
        void firstDown.promise.then(() => {
          res.addTrailers({ 'x-checksum': String(got.length) });
          res.end('end');
        });
      });
    });
    const result = await new Promise<{ body: string; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: s.port(), path: '/upload', method: 'POST', agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          if (body === '') firstDown.resolve(c.toString());
          body += c.toString();
        });
        res.on('end', () => resolve({ body, trailers: res.trailers }));
      });
      req.on('error', reject);
      // Chunked (no content-length): the second half only after the backend has the first.
      req.write('a'.repeat(1000));
      void firstUp.promise.then(() => req.end('b'.repeat(500)));
    });
    expect(result.body).to.equal('got 1500 bytes;end');
    expect(result.trailers['x-checksum']).to.equal('1500');
    expect(s.access[0]).to.include({ status: 200, bytes_in: 1500 });
  });

  it('Expect: 100-continue is answered by the sidecar and not sent upstream', async () => {
    let expectSeen: string | undefined = 'unset';
    const s = await start((req, res) => {
      expectSeen = req.headers.expect;
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: s.port(), path: '/e', method: 'PUT', agent: false, headers: { expect: '100-continue', 'content-length': '2' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.on('continue', () => req.end('hi'));
    });
    expect(status).to.equal(200);
    expect(expectSeen).to.equal(undefined);
  });
});

import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { createRequire } from 'node:module';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import { startBookstore, type BookstoreServer } from '../../examples/bookstore/server.js';
import { startH1Echo, type Started } from '../support/backends.js';
import { bookstoreClient } from '../support/bookstore-client.js';
import { makeTestCerts, type TestCerts } from '../support/certs.js';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

const SVC = 'outrigger.examples.bookstore.v1.BookstoreService';
type Echo = { backend: string; url: string; headers: Record<string, string> };
type Reply = { status: number; headers: Record<string, unknown>; body: string };

function collect(res: NodeJS.ReadableStream, status: number, headers: Record<string, unknown>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let body = '';
    res.on('data', (c: Buffer) => (body += c.toString()));
    res.on('end', () => resolve({ status, headers, body }));
    res.on('error', reject);
  });
}

/** HTTPS HTTP/1.1; `alpn` is what the client offers (node:https offers none by default). */
function httpsGet(port: number, path: string, ca: Buffer, alpn: string[] = ['http/1.1']): Promise<Reply & { alpn: string | false | null }> {
  // https.request passes TLS options (ALPNProtocols too) on to tls.connect.
  const opts: https.RequestOptions & tls.ConnectionOptions = { host: '127.0.0.1', port, path, ca, servername: 'localhost', ALPNProtocols: alpn, agent: false };
  return new Promise((resolve, reject) => {
    const req = https.request(
      opts,
      (res) => {
        const alpnProtocol = (res.socket as tls.TLSSocket).alpnProtocol;
        collect(res, res.statusCode ?? 0, res.headers).then((r) => resolve({ ...r, alpn: alpnProtocol }), reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function h2Get(
  url: string,
  path: string,
  opts: http2.SecureClientSessionOptions = {},
): Promise<Reply & { alpn: string | false | null | undefined; maxConcurrentStreams: number | undefined }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, opts);
    session.on('error', reject);
    const req = session.request({ ':method': 'GET', ':path': path });
    req.on('error', reject);
    req.on('response', (h) => {
      const alpn = (session.socket as tls.TLSSocket).alpnProtocol;
      const maxConcurrentStreams = session.remoteSettings.maxConcurrentStreams;
      collect(req, Number(h[':status']), h).then((r) => {
        session.close();
        resolve({ ...r, alpn, maxConcurrentStreams });
      }, reject);
    });
    req.end();
  });
}

function httpGet(port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      collect(res, res.statusCode ?? 0, res.headers).then(resolve, reject);
    });
    req.on('error', reject);
  });
}

/** The value of one counter sample in Prometheus text, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.indexOf('}'));
    const have = inner.split(',');
    if (want.every((w) => have.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

describe('TLS listener (ALPN h2 / http/1.1, plaintext on the same port)', function () {
  this.timeout(5000);
  let certs: TestCerts;
  let h1: Started<unknown>;
  let bookstore: BookstoreServer;
  let sc: TestSidecar;

  before(async () => {
    certs = await makeTestCerts();
    h1 = await startH1Echo('h1-backend');
    bookstore = await startBookstore();
    sc = await startTestSidecar([
      listener('main', { tls: { certFile: certs.certFile, keyFile: certs.keyFile } }),
      routes('main', [
        { name: 'bookstore', match: { grpc: { service: SVC } }, route: { cluster: 'bookstore' } },
        prefixRoute('/', 'echo'),
      ]),
      cluster('echo', [h1.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      cluster('bookstore', [bookstore.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    ]);
  });
  after(async () => {
    await sc?.close();
    await h1?.close();
    await bookstore?.close();
    await certs?.remove();
  });

  it('the test does not rely on the selfsigned package (certs come from openssl)', () => {
    const require = createRequire(import.meta.url);
    expect(() => require.resolve('selfsigned')).to.throw();
  });

  // Regression: the ClientHello was lost (raw socket resumed after the hand-off),
  // then h2 over TLS hung after the handshake (server TLSSocket never 'connected').
  it('HTTPS HTTP/1.1 (ALPN http/1.1) is proxied to the h1 backend with x-forwarded-proto: https', async () => {
    const r = await httpsGet(sc.port(), '/tls/h1?x=1', certs.ca);
    expect(r.status).to.equal(200);
    expect(r.alpn).to.equal('http/1.1');
    const e = JSON.parse(r.body) as Echo;
    expect(e.url).to.equal('/tls/h1?x=1');
    expect(e.headers['x-forwarded-proto']).to.equal('https');
  });

  it('HTTPS without ALPN falls back to HTTP/1.1', async () => {
    const r = await httpsGet(sc.port(), '/tls/no-alpn', certs.ca, []);
    expect(r.status).to.equal(200);
    expect(r.alpn).to.equal(false);
    expect((JSON.parse(r.body) as Echo).headers['x-forwarded-proto']).to.equal('https');
  });

  it('HTTP/2 over TLS (ALPN h2) is proxied, also with x-forwarded-proto: https', async () => {
    const r = await h2Get(`https://localhost:${sc.port()}`, '/tls/h2', { ca: certs.ca, ALPNProtocols: ['h2'] });
    expect(r.status).to.equal(200);
    expect(r.alpn).to.equal('h2');
    // The settings handshake runs after the TLS one: the default limit is advertised.
    expect(r.maxConcurrentStreams).to.equal(1000);
    const e = JSON.parse(r.body) as Echo;
    expect(e.url).to.equal('/tls/h2');
    expect(e.headers['x-forwarded-proto']).to.equal('https');
  });

  it('a grpc-js client with TLS credentials reaches the bookstore (unary GetShelf)', async () => {
    const client = bookstoreClient(`localhost:${sc.port()}`, { credentials: grpc.credentials.createSsl(certs.ca) });
    try {
      const { response } = await client.unary('getShelf', { shelf: 1n }, { deadline: Date.now() + 5000 });
      expect(response.id).to.equal(1n);
    } finally {
      client.close();
    }
  });

  it('plaintext h2c and HTTP/1.1 still work on the same port (detection per connection)', async () => {
    const a = await httpGet(sc.port(), '/plain/h1');
    expect(a.status).to.equal(200);
    expect((JSON.parse(a.body) as Echo).headers['x-forwarded-proto']).to.equal('http');
    const b = await h2Get(`http://127.0.0.1:${sc.port()}`, '/plain/h2c');
    expect(b.status).to.equal(200);
    expect((JSON.parse(b.body) as Echo).headers['x-forwarded-proto']).to.equal('http');
  });

  it('a client that does not trust the CA fails the handshake; the listener keeps serving', async () => {
    const err = await httpsGet(sc.port(), '/untrusted', Buffer.from('')).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err?.code).to.match(/SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY/);
    // The client hangs up mid-handshake; the listener counts it as a failed handshake.
    await waitFor(
      async () => sample(await sc.metrics(), 'outrigger_downstream_protocol_errors_total', { listener: 'main', kind: 'tls_handshake' }) >= 1,
      'tls_handshake protocol error',
      2000,
    );
    expect((await httpsGet(sc.port(), '/after-untrusted', certs.ca)).status).to.equal(200);
  });

  it('connection metrics count TLS connections by negotiated protocol', async () => {
    const before = await sc.metrics();
    const count = (text: string, protocol: string) =>
      sample(text, 'outrigger_downstream_connections_total', { listener: 'main', protocol });
    await httpsGet(sc.port(), '/m1', certs.ca);
    await httpsGet(sc.port(), '/m2', certs.ca);
    await h2Get(`https://localhost:${sc.port()}`, '/m3', { ca: certs.ca, ALPNProtocols: ['h2'] });
    await httpGet(sc.port(), '/m4');
    const after = await sc.metrics();
    expect(count(after, 'https1') - count(before, 'https1')).to.equal(2);
    expect(count(after, 'h2') - count(before, 'h2')).to.equal(1);
    expect(count(after, 'http1') - count(before, 'http1')).to.equal(1);
    const tlsDetections = (t: string) => sample(t, 'outrigger_protocol_detection_total', { listener: 'main', outcome: 'tls' });
    expect(tlsDetections(after) - tlsDetections(before)).to.equal(3);
  });
});

import { expect } from 'chai';
import http2 from 'node:http2';
import type net from 'node:net';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { FakeClock } from '../support/fake-clock.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

/** A session's ping round trip: frames queued on it before now (a GOAWAY) have been received once it resolves. */
function ping(s: http2.Http2Session): Promise<void> {
  return new Promise((resolve, reject) => s.ping((err) => (err ? reject(err) : resolve())));
}

/**
 * idleTimeout of listeners and clusters on HTTP/2 (Envoy's idle_timeout): a
 * connection is closed with GOAWAY after that long with no active stream,
 * downstream and upstream; a quiet stream keeps its connection. Time is the
 * sidecar's FakeClock; real h2c clients and backend.
 */
describe('HTTP/2 idleTimeout: no active stream for that long, GOAWAY', function () {
  let backend: http2.Http2Server;
  let backendPort: number;
  /** The sidecar's sessions to the backend, newest last, with whether each got a GOAWAY. */
  const upstream: { s: http2.ServerHttp2Session; goaway: boolean }[] = [];
  /** Streams of /hold requests, answered with headers and ended by the test. */
  const held: http2.ServerHttp2Stream[] = [];
  let clock: FakeClock;
  let sc: TestSidecar;

  before(async () => {
    backend = http2.createServer();
    backend.on('session', (s) => {
      const e = { s, goaway: false };
      upstream.push(e);
      s.on('goaway', () => (e.goaway = true));
      s.on('error', () => {});
    });
    backend.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      stream.respond({ ':status': 200 });
      if (headers[':path'] === '/hold') held.push(stream);
      else stream.end('ok');
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
    backendPort = (backend.address() as net.AddressInfo).port;
    clock = new FakeClock();
    sc = await startTestSidecar(
      [listener('main', { idleTimeout: '10s' }), routes('main', [prefixRoute('/', 'up')]), cluster('up', [backendPort], 'UPSTREAM_PROTOCOL_HTTP2', { idleTimeout: '5s' })],
      { clock },
    );
  });
  after(async () => {
    await sc?.close();
    for (const e of upstream) e.s.destroy();
    await new Promise<void>((r) => backend.close(() => r()));
  });

  /** An h2c client of the sidecar, connected, counting the GOAWAYs it gets. */
  async function client(): Promise<{ c: http2.ClientHttp2Session; goaway: () => boolean }> {
    const c = http2.connect(`http://127.0.0.1:${sc.port()}`);
    c.on('error', () => {});
    let got = false;
    c.on('goaway', () => (got = true));
    await new Promise<void>((r) => c.once('remoteSettings', () => r()));
    // Answered by node:http2 once the sidecar has handed it the connection (after our SETTINGS ACK).
    await ping(c);
    return { c, goaway: () => got };
  }

  function get(c: http2.ClientHttp2Session, path: string): { headers: Promise<void>; done: Promise<string> } {
    const req = c.request({ ':path': path });
    req.end();
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    return {
      headers: new Promise((r) => req.once('response', () => r())),
      done: new Promise((resolve, reject) => {
        req.once('close', () => resolve(body));
        req.once('error', reject);
      }),
    };
  }

  it('downstream: a connection with no stream gets GOAWAY at idleTimeout, not before', async () => {
    const { c, goaway } = await client();
    clock.advance(9_999);
    await ping(c);
    expect(goaway()).to.equal(false);
    clock.advance(1);
    await waitFor(goaway, 'the GOAWAY');
    await waitFor(() => c.closed || c.destroyed, 'the connection to close');
  });

  it('downstream: a request resets it; an open stream keeps the connection past it, however quiet', async () => {
    const { c, goaway } = await client();
    clock.advance(9_000);
    expect(await get(c, '/quick').done).to.equal('ok');
    clock.advance(9_999); // 10 s since connecting, 9.999 s since the request
    await ping(c);
    expect(goaway(), 'idle counts from the last stream, not from the connect').to.equal(false);
    const h = get(c, '/hold');
    await h.headers;
    clock.advance(60_000);
    await ping(c);
    expect(goaway(), 'a quiet open stream keeps its connection').to.equal(false);
    held.shift()!.end('late');
    expect(await h.done).to.equal('late');
    clock.advance(9_999);
    await ping(c);
    expect(goaway()).to.equal(false);
    clock.advance(1);
    await waitFor(goaway, 'the GOAWAY 10 s after the stream ended');
  });

  it('upstream: the session to the backend gets GOAWAY at the cluster idleTimeout after its last stream, kept while one is open', async () => {
    const { c } = await client();
    const h = get(c, '/hold');
    await h.headers;
    const up = upstream[upstream.length - 1]!;
    clock.advance(30_000);
    await ping(up.s);
    expect(up.goaway, 'an open stream keeps the upstream session').to.equal(false);
    held.shift()!.end('done');
    await h.done;
    clock.advance(4_999);
    await ping(up.s);
    expect(up.goaway).to.equal(false);
    clock.advance(1);
    await waitFor(() => up.goaway, 'the upstream GOAWAY');
    // The next request opens a new session.
    const n = upstream.length;
    expect(await get(c, '/again').done).to.equal('ok');
    expect(upstream.length).to.equal(n + 1);
    c.close();
  });
});

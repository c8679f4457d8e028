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
  /** Settles when the backend's /big stream has closed (all sent, END_STREAM both ways). */
  let bigDone: Promise<void> | undefined;

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
      else if (headers[':path'] === '/big') {
        // 512 KiB: inside the sidecar's 1 MiB upstream stream window, so the backend finishes even while the sidecar's read side is paused.
        bigDone = new Promise((r) => stream.once('close', () => r()));
        stream.end(Buffer.alloc(512 * 1024, 120));
      } else if (headers[':path'] === '/early') {
        // Answers without reading the request body, which stays unread in its (full) window.
        stream.end('early');
      } else stream.end('ok');
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

  it('downstream: a request body left unread (the upstream answered without reading it) does not keep the connection from going idle', async () => {
    const { c, goaway } = await client();
    const before = sc.access.length;
    // 48 KiB: it all arrives (inside the 64 KiB stream window), with END_STREAM, while the sidecar's read
    // side is paused behind the upstream, which never reads it.
    const req = c.request({ ':path': '/early', ':method': 'POST' });
    req.end(Buffer.alloc(48 * 1024, 121));
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    await new Promise<void>((r) => req.once('end', () => r()));
    expect(body).to.equal('early');
    await waitFor(() => sc.access.length > before, 'the exchange to finish (its access-log line)');
    await waitFor(() => {
      clock.advance(10_000);
      return goaway();
    }, 'the downstream connection to go idle');
  });

  it('upstream: an answer that finished while paused behind a slow client, whose client then left, still lets the session go idle', async () => {
    const { c } = await client();
    // The client never reads: the sidecar's writes to it fill up and it pauses the upstream stream, whose
    // answer then arrives whole (END_STREAM) into the paused stream.
    const req = c.request({ ':path': '/big' });
    req.end();
    req.pause();
    await new Promise<void>((r) => req.once('response', () => r()));
    await waitFor(() => bigDone !== undefined, 'the backend to start /big');
    await bigDone;
    const up = upstream[upstream.length - 1]!;
    expect(up.goaway).to.equal(false);
    c.destroy();
    // The cancelled call's stream must end (and leave the count) although its data was never read.
    await waitFor(() => {
      clock.advance(5_000);
      return up.goaway;
    }, 'the upstream session to go idle');
  });
});

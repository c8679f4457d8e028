import { expect } from 'chai';
import net from 'node:net';
import { request } from 'undici';
import { startH1Echo, startTcpEcho, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { FakeClock } from '../support/fake-clock.js';
import { FRAME, h2Frame, rawH2, requestBlock } from '../support/h2-raw.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

function counter(metrics: string, name: string, labels: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** A raw socket and everything it received, with its close as a promise. */
function rawSocket(port: number): { sock: net.Socket; received: () => string; closed: Promise<void>; data: Promise<void> } {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  let got = '';
  let onData!: () => void;
  const data = new Promise<void>((r) => (onData = r));
  sock.on('data', (c: Buffer) => {
    got += c.toString('latin1');
    onData();
  });
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  return { sock, received: () => got, closed, data };
}

/** issue 19 point 2: limits.requestHeadersTimeout, with a short configured value and real clients. */
describe('limits.requestHeadersTimeout (slow request headers)', function () {
  let h1: Started<unknown>;
  let sc: TestSidecar;

  before(async () => {
    h1 = await startH1Echo();
    sc = await startTestSidecar([
      listener('main', { limits: { requestHeadersTimeout: '0.2s' } }),
      routes('main', [prefixRoute('/', 'h1')]),
      cluster('h1', [h1.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
  });
  after(async () => {
    await sc?.close();
    await h1?.close();
  });

  it('HTTP/1.1: a client trickling header lines gets 408 and the connection closes', async () => {
    const c = rawSocket(sc.port());
    c.sock.write('GET /slow HTTP/1.1\r\nHost: x\r\n');
    // One header line every 20 ms, each well inside any idle timeout, until the sidecar answers.
    let n = 0;
    const trickle = setInterval(() => c.sock.writable && c.sock.write(`x-slow-${n++}: y\r\n`), 20);
    try {
      await c.closed;
    } finally {
      clearInterval(trickle);
    }
    expect(c.received()).to.match(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(c.received()).to.include('connection: close');
    expect(n).to.be.at.least(3); // it did trickle for a while first
    expect(counter(await sc.metrics(), 'outrigger_downstream_protocol_errors_total', 'listener="main",kind="h1_headers_timeout"')).to.be.at.least(1);
  });

  it('HTTP/1.1: a request whose headers arrive in time is served, on a connection older than the timeout too', async () => {
    const c = rawSocket(sc.port());
    c.sock.write('GET /one HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => c.received().includes('"/one"'), 'first response');
    // The timeout bounds each request's headers, not the connection: let more than it pass (real time: Node's own timer).
    await new Promise<void>((r) => setTimeout(r, 300));
    c.sock.write('GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await c.closed;
    expect(c.received()).to.match(/^HTTP\/1\.1 200/);
    expect(c.received()).to.include('"/two"');
    const ok = await request(`http://127.0.0.1:${sc.port()}/fine`);
    expect(ok.statusCode).to.equal(200);
    await ok.body.text();
  });

  it('HTTP/2: a connection whose first HEADERS never completes (CONTINUATION stall) gets GOAWAY(NO_ERROR) and is closed', async () => {
    const r = rawH2(sc.port());
    // Both server SETTINGS (ours, then nghttp2's) seen and ACKed: nothing may come between HEADERS and its CONTINUATION.
    await r.frame((f) => f.type === FRAME.SETTINGS && f.flags === 0 && r.all().filter((x) => x.type === FRAME.SETTINGS && x.flags === 0).length >= 2);
    // HEADERS without END_HEADERS: nghttp2 waits for CONTINUATION frames that never come.
    r.sock.write(h2Frame(FRAME.HEADERS, 0, 1, requestBlock('/stalled')));
    const goaway = await r.frame((f) => f.type === FRAME.GOAWAY);
    expect(goaway.payload.readUInt32BE(4)).to.equal(0); // NO_ERROR
    await r.closed;
    expect(counter(await sc.metrics(), 'outrigger_downstream_protocol_errors_total', 'listener="main",kind="h2_headers_timeout"')).to.be.at.least(1);
  });
});

/**
 * issue 19 point 3: without a default cluster a silent new connection can
 * only be a client that connected ahead of its request, so it is kept up to
 * requestHeadersTimeout; with one, the short detection timeout stays (a
 * server-speaks-first protocol). Time is a FakeClock.
 */
describe('pre-connected clients (no defaultCluster)', function () {
  let h1: Started<unknown>;
  let greeter: Started<unknown>;
  let sc: TestSidecar;
  let clock: FakeClock;

  before(async () => {
    h1 = await startH1Echo();
    greeter = await startTcpEcho(true);
    clock = new FakeClock();
    sc = await startTestSidecar(
      [
        listener('main'),
        listener('tcp', { defaultCluster: 'greeter' }),
        routes('main', [prefixRoute('/', 'h1')]),
        cluster('h1', [h1.port], 'UPSTREAM_PROTOCOL_HTTP1'),
        cluster('greeter', [greeter.port]),
      ],
      { clock },
    );
  });
  after(async () => {
    await sc?.close();
    await h1?.close();
    await greeter?.close();
  });

  const active = async (name: string): Promise<number> => counter(await sc.metrics(), 'outrigger_downstream_connections_active', `listener="${name}"`);

  it('a client that sends its request after the detection timeout gets its answer', async () => {
    const before = await active('main');
    const c = rawSocket(sc.port());
    await waitFor(async () => (await active('main')) === before + 1, 'the connection accepted');
    clock.advance(150); // past the 100 ms detection timeout
    c.sock.write('GET /late HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await c.closed;
    expect(c.received()).to.match(/^HTTP\/1\.1 200/);
    expect(c.received()).to.include('"/late"');
  });

  it('a client silent for longer than requestHeadersTimeout (10 s) is closed', async () => {
    const before = await active('main');
    const c = rawSocket(sc.port());
    await waitFor(async () => (await active('main')) === before + 1, 'the connection accepted');
    clock.advance(9_000);
    expect(c.sock.destroyed).to.equal(false);
    clock.advance(1_001);
    await c.closed;
    expect(c.received()).to.equal('');
  });

  it('with a default cluster, a silent client is forwarded after the short detection timeout (server speaks first)', async () => {
    const before = await active('tcp');
    const c = rawSocket(sc.port('tcp'));
    await waitFor(async () => (await active('tcp')) === before + 1, 'the connection accepted');
    clock.advance(150);
    await c.data;
    expect(c.received()).to.equal('hello\n');
    c.sock.destroy();
  });
});

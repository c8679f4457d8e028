import { expect } from 'chai';
import http2 from 'node:http2';
import net from 'node:net';
import { request } from 'undici';
import { startH1Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { FakeClock } from '../support/fake-clock.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';

function counter(metrics: string, name: string, labels: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(labels ? `${name}{${labels}}` : `${name} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/**
 * issue 19 point 4: heap-based load shedding through a real sidecar; the heap
 * reader is injected and time is a FakeClock, so no gigabytes are allocated.
 */
describe('overload manager (--max-heap-fraction)', function () {
  const GiB = 2 ** 30;
  let used = 0.5 * GiB;
  let h1: Started<unknown>;
  let sc: TestSidecar;
  let clock: FakeClock;
  let h2: http2.ClientHttp2Session;

  before(async () => {
    h1 = await startH1Echo();
    clock = new FakeClock();
    sc = await startTestSidecar(
      [listener('main'), routes('main', [prefixRoute('/', 'h1')]), cluster('h1', [h1.port], 'UPSTREAM_PROTOCOL_HTTP1')],
      { clock, overload: { maxHeapFraction: 0.9, readHeap: () => ({ used, limit: GiB }) } },
    );
    h2 = http2.connect(`http://127.0.0.1:${sc.port()}`);
    h2.on('error', () => {});
  });
  after(async () => {
    h2?.close();
    await sc?.close();
    await h1?.close();
  });

  const base = (): string => `http://127.0.0.1:${sc.port()}`;
  const admin = (path: string) => request(`http://127.0.0.1:${sc.sidecar.adminPort}${path}`);
  /** A gRPC-shaped call on the already open HTTP/2 connection: its response headers. */
  const grpcCall = (): Promise<http2.IncomingHttpHeaders> =>
    new Promise((resolve, reject) => {
      const req = h2.request({ ':method': 'POST', ':path': '/svc/Method', 'content-type': 'application/grpc', te: 'trailers' });
      let h: http2.IncomingHttpHeaders = {};
      req.on('response', (x) => (h = { ...x }));
      req.on('trailers', (t) => (h = { ...h, ...t }));
      req.on('error', reject);
      req.resume();
      req.on('close', () => resolve(h));
      req.end(Buffer.from([0, 0, 0, 0, 0]));
    });

  it('takes work normally below the watermark', async () => {
    const r = await request(`${base()}/before`);
    expect(r.statusCode).to.equal(200);
    await r.body.text();
    expect(await (await admin('/ready')).body.text()).to.equal('ready\n');
  });

  it('above it refuses new requests (LO) and connections, stays ready, and counts the transition', async () => {
    await new Promise<void>((r) => (h2.connecting ? h2.once('connect', () => r()) : r()));
    used = 0.95 * GiB;
    clock.advance(250);
    const grpc = await grpcCall();
    expect(grpc['grpc-status']).to.equal('8'); // RESOURCE_EXHAUSTED, on a connection opened before
    expect(grpc['x-outrigger-local-reply']).to.equal('LO');
    // A new connection is closed at once, unanswered.
    const sock = net.connect(sc.port(), '127.0.0.1');
    sock.on('error', () => {});
    let got = '';
    sock.on('data', (c: Buffer) => (got += c.toString()));
    sock.write('GET /new HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((r) => sock.once('close', () => r()));
    expect(got).to.equal('');
    const ready = await admin('/ready');
    expect(ready.statusCode).to.equal(200);
    expect(await ready.body.text()).to.include('overloaded');
    const m = await sc.metrics();
    expect(counter(m, 'outrigger_overload_active', '')).to.equal(1);
    expect(counter(m, 'outrigger_overload_transitions_total', 'state="overloaded"')).to.equal(1);
    expect(counter(m, 'outrigger_downstream_connections_rejected_total', 'listener="main",reason="overload"')).to.be.at.least(1);
    expect(counter(m, 'outrigger_local_replies_total', 'listener="main",flag="LO"')).to.be.at.least(1);
  });

  it('resumes only below the lower watermark', async () => {
    used = 0.87 * GiB;
    clock.advance(250);
    expect((await grpcCall())['x-outrigger-local-reply']).to.equal('LO');
    used = 0.8 * GiB;
    clock.advance(250);
    const r = await request(`${base()}/after`);
    expect(r.statusCode).to.equal(200);
    await r.body.text();
    const m = await sc.metrics();
    expect(counter(m, 'outrigger_overload_active', '')).to.equal(0);
    expect(counter(m, 'outrigger_overload_transitions_total', 'state="normal"')).to.equal(1);
    expect(await (await admin('/ready')).body.text()).to.equal('ready\n');
  });
});

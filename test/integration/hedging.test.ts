import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema, MethodOptions_IdempotencyLevel, MethodOptionsSchema } from '@bufbuild/protobuf/wkt';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';
import { startEchoBackend } from '../support/echo-backend.js';
import { ECHO_DESCRIPTOR, requestJson } from '../support/transcode-harness.js';

/** An HTTP/1.1 backend that never answers (its requests are held until the client side goes away). */
async function stuckH1() {
  const held: { closed: boolean }[] = [];
  const srv = http.createServer((req, res) => {
    const h = { closed: false };
    held.push(h);
    res.once('close', () => (h.closed = true));
    req.resume();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as AddressInfo).port,
    held,
    close: () => {
      srv.closeAllConnections();
      return new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

/** An h2c backend that accepts every stream and never answers; it sees the CANCEL when the sidecar drops it. */
async function stuckH2() {
  const streams: http2.ServerHttp2Stream[] = [];
  const server = http2.createServer();
  server.on('stream', (s) => {
    s.on('error', () => {});
    streams.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    streams,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function fastH1(name: string) {
  let hits = 0;
  const srv = http.createServer((req, res) => {
    hits++;
    req.resume();
    res.writeHead(200).end(`${name}:${req.headers['x-outrigger-attempt-count'] ?? '1'}`);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as AddressInfo).port,
    get hits() {
      return hits;
    },
    close: () => {
      srv.closeAllConnections();
      return new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

const ECHO_SVC = 'outrigger.examples.transcoding.v1.EchoService';

/** The echo descriptor set with Search declared NO_SIDE_EFFECTS (as `option idempotency_level = NO_SIDE_EFFECTS;` would). */
function echoWithSafeSearch(): string {
  const set = fromBinary(FileDescriptorSetSchema, Buffer.from(ECHO_DESCRIPTOR, 'base64'));
  const file = set.file.find((f) => f.service.some((s) => s.name === 'EchoService'))!;
  const search = file.service.find((s) => s.name === 'EchoService')!.method.find((m) => m.name === 'Search')!;
  search.options ??= create(MethodOptionsSchema);
  search.options.idempotencyLevel = MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
  return Buffer.from(toBinary(FileDescriptorSetSchema, set)).toString('base64');
}

describe('hedging through the sidecar (issue 12 point 6)', function () {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });
  async function sidecar(docs: Parameters<typeof startTestSidecar>[0]): Promise<TestSidecar> {
    const sc = await startTestSidecar(docs);
    closers.push(() => sc.close());
    return sc;
  }

  it('a GET whose first attempt is stuck gets the fast second attempt\'s answer; the stuck one is cancelled (e)', async () => {
    const slow = await stuckH1();
    const fast = await fastH1('fast');
    closers.push(slow.close, fast.close);
    const sc = await sidecar([
      listener('main'),
      routes('main', [prefixRoute('/', 'c', { hedgePolicy: { maxAttempts: 2, hedgingDelay: '0.05s' } })]),
      cluster('c', [slow.port, fast.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    const url = `http://127.0.0.1:${sc.port()}/x`;
    const bodies: string[] = [];
    // Round robin: within a few requests one starts on the stuck endpoint.
    for (let i = 0; i < 4; i++) {
      const r = await fetch(url);
      expect(r.status).to.equal(200);
      bodies.push(await r.text());
    }
    expect(slow.held.length).to.be.greaterThan(0);
    // Every answer is the fast endpoint's; the hedged ones are its second attempt.
    for (const b of bodies) expect(b).to.match(/^fast:[12]$/);
    expect(bodies.filter((b) => b === 'fast:2')).to.have.length(slow.held.length);
    await waitFor(() => slow.held.every((h) => h.closed), 'the stuck attempts cancelled');
    await waitFor(() => sc.access.length === 4, 'access log');
    expect(sc.access.filter((l) => l.attempts === 2)).to.have.length(slow.held.length);
    for (const l of sc.access) expect(l).to.include({ status: 200, upstream: `127.0.0.1:${fast.port}` }).and.not.have.property('flags');
    const metrics = await sc.metrics();
    expect(metrics).to.include(`outrigger_upstream_retries_total{cluster="c",kind="hedge"} ${slow.held.length}`);
    expect(metrics).to.include(`outrigger_upstream_requests_total{cluster="c",outcome="cancelled"} ${slow.held.length}`);
  });

  it('is not applied to a POST (not safe to repeat) unless the route says idempotent: true', async () => {
    const slow = await stuckH1();
    const fast = await fastH1('fast');
    closers.push(slow.close, fast.close);
    const hedge = { maxAttempts: 2, hedgingDelay: '0.05s' };
    const sc = await sidecar([
      listener('main'),
      routes('main', [
        prefixRoute('/plain', 'c', { hedgePolicy: hedge, timeout: '0.3s' }),
        prefixRoute('/marked', 'c', { hedgePolicy: hedge, idempotent: true }),
      ]),
      cluster('c', [slow.port, fast.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    const base = `http://127.0.0.1:${sc.port()}`;
    const plain = await Promise.all([0, 1].map(() => fetch(`${base}/plain`, { method: 'POST', body: 'b' }).then((r) => r.status)));
    expect(plain.sort()).to.deep.equal([200, 504]); // one went to the stuck endpoint alone and timed out
    const marked = await Promise.all([0, 1].map(() => fetch(`${base}/marked`, { method: 'POST', body: 'b' }).then((r) => r.text())));
    expect(marked.sort()).to.deep.equal(['fast:1', 'fast:2']);
  });

  it('gRPC (gRFC A6): the method descriptor\'s NO_SIDE_EFFECTS makes a call hedged, pass-through and transcoded; others are not', async () => {
    const stuck = await stuckH2();
    const echo = await startEchoBackend();
    closers.push(stuck.close, () => echo.close());
    const sc = await sidecar([
      listener('main'),
      routes('main', [
        {
          name: 'echo',
          match: { prefix: '/' },
          route: { cluster: 'echo', transcode: { descriptorBin: echoWithSafeSearch() }, hedgePolicy: { maxAttempts: 2, hedgingDelay: '0.05s' }, timeout: '1s' },
        },
      ]),
      cluster('echo', [stuck.port, echo.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    ]);
    const client = new grpc.Client(`127.0.0.1:${sc.port()}`, grpc.credentials.createInsecure());
    closers.push(async () => client.close());
    const id = (b: Buffer): Buffer => b;
    const call = (method: string): Promise<number> =>
      new Promise((resolve) =>
        client.makeUnaryRequest(`/${ECHO_SVC}/${method}`, id, id, Buffer.alloc(0), new grpc.Metadata(), (err) => resolve(err ? err.code : 0)),
      );
    // Search (NO_SIDE_EFFECTS) always answers; Get (no idempotency level) fails whenever it starts on the stuck endpoint.
    expect(await Promise.all([0, 1, 2, 3].map(() => call('Search')))).to.deep.equal([0, 0, 0, 0]);
    const gets = await Promise.all([0, 1].map(() => call('Get')));
    expect(gets.sort()).to.deep.equal([0, grpc.status.DEADLINE_EXCEEDED]);
    // The same through the transcoder: SEARCH /v1/search is the Search method.
    for (let i = 0; i < 2; i++) {
      const r = await requestJson(`http://127.0.0.1:${sc.port()}/v1/search?name=n${i}`, { method: 'SEARCH' as 'GET' });
      expect(r.status).to.equal(200);
      expect(r.json).to.include({ name: `n${i}` });
    }
    await waitFor(() => sc.access.length === 8, 'access log');
    // Round robin over two endpoints, a hedge taking the next pick: every hedged request leaves the next one starting on the stuck endpoint.
    expect(sc.access.filter((l) => String(l.path).startsWith(`/${ECHO_SVC}/Search`) && l.attempts === 2).length).to.be.at.least(2);
    expect(sc.access.filter((l) => String(l.path).startsWith('/v1/search') && l.attempts === 2).length).to.be.at.least(1);
    expect(sc.access.filter((l) => String(l.path).startsWith(`/${ECHO_SVC}/Get`)).every((l) => l.attempts === undefined)).to.equal(true);
    await waitFor(() => stuck.streams.every((s) => s.closed || s.destroyed), 'the stuck attempts cancelled (RST_STREAM)');
  });
});

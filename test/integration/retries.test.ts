import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import http, { type IncomingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';
import { startH2Echo } from '../support/backends.js';
import { resetStream } from '../../src/proxy/http/h2-reset.js';
import { startEchoBackend } from '../support/echo-backend.js';
import { ECHO_DESCRIPTOR, requestJson } from '../support/transcode-harness.js';

/** An HTTP/1.1 backend whose answer `answer(n)` decides (n: its own request count, from 1); it records what it saw. */
async function h1Backend(name: string, answer: (n: number, req: http.IncomingMessage, res: http.ServerResponse) => void = okAnswer(name)) {
  const seen: { headers: IncomingHttpHeaders; bodyBytes: number }[] = [];
  const srv = http.createServer((req, res) => {
    let bodyBytes = 0;
    req.on('data', (c: Buffer) => (bodyBytes += c.length));
    req.on('end', () => {
      seen.push({ headers: req.headers, bodyBytes });
      answer(seen.length, req, res);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    name,
    port: (srv.address() as AddressInfo).port,
    seen,
    close: () => {
      srv.closeAllConnections();
      return new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

function okAnswer(name: string) {
  return (_n: number, _req: http.IncomingMessage, res: http.ServerResponse) => res.writeHead(200).end(name);
}

function statusAnswer(status: number, body: string) {
  return (_n: number, _req: http.IncomingMessage, res: http.ServerResponse) => res.writeHead(status, { 'x-from': body }).end(body);
}

/** A port nothing listens on (connection refused). */
async function deadPort(): Promise<number> {
  const srv = http.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** A grpc-js server with one unary method /t.Svc/Call (raw bytes both ways) answering `answer`. */
async function grpcBackend(answer: (md: grpc.Metadata) => { code?: grpc.status; reply?: string }) {
  const seen: grpc.Metadata[] = [];
  /** ms left before each call's deadline when it arrived (Infinity: none). */
  const left: number[] = [];
  const server = new grpc.Server();
  const id = (b: Buffer): Buffer => b;
  server.addService(
    { call: { path: '/t.Svc/Call', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } },
    {
      call: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        seen.push(call.metadata);
        const d = call.getDeadline();
        left.push((d instanceof Date ? d.getTime() : Number(d)) - Date.now());
        const a = answer(call.metadata);
        if (a.code !== undefined && a.code !== grpc.status.OK) return cb({ code: a.code, details: `failed with ${a.code}` });
        cb(null, Buffer.from(a.reply ?? 'ok'));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port, seen, left, close: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
}

function grpcCall(port: number, md: Record<string, string> = {}, deadlineMs?: number): Promise<{ code: number; reply?: string; details?: string }> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const meta = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) meta.set(k, v);
  const id = (b: Buffer): Buffer => b;
  return new Promise((resolve) => {
    const options: grpc.CallOptions = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
    client.makeUnaryRequest('/t.Svc/Call', id, id, Buffer.from('hi'), meta, options, (err, reply) => {
      client.close();
      if (err) resolve({ code: err.code, details: err.details });
      else resolve({ code: 0, reply: reply!.toString() });
    });
  });
}

const get = async (sc: TestSidecar, path = '/x', init: RequestInit = {}): Promise<{ status: number; body: string; headers: Headers }> => {
  const r = await fetch(`http://127.0.0.1:${sc.port()}${path}`, init);
  return { status: r.status, body: await r.text(), headers: r.headers };
};

const metric = async (sc: TestSidecar, line: string): Promise<number> => {
  const text = await sc.metrics();
  const m = text.split('\n').find((l) => l.startsWith(`${line} `));
  return m === undefined ? 0 : Number(m.slice(line.length + 1));
};

describe('retries through the sidecar (issue 12 point 5)', function () {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });
  async function sidecar(docs: Parameters<typeof startTestSidecar>[0]): Promise<TestSidecar> {
    const sc = await startTestSidecar(docs);
    closers.push(() => sc.close());
    return sc;
  }

  it('HTTP/1.1: a 503 is retried on another endpoint; the client gets the 200; the retry says x-outrigger-attempt-count: 2; counted', async () => {
    const bad = await h1Backend('bad', statusAnswer(503, 'bad'));
    const good = await h1Backend('good');
    closers.push(bad.close, good.close);
    const sc = await sidecar([
      listener('main'),
      routes('main', [prefixRoute('/', 'c', { retryPolicy: { retryOn: ['5xx'], numRetries: 2 } })]),
      cluster('c', [bad.port, good.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    for (let i = 0; i < 6; i++) expect(await get(sc)).to.include({ status: 200, body: 'good' });
    await waitFor(() => sc.access.length === 6, 'access log');
    const retried = sc.access.filter((l) => l.attempts === 2);
    expect(retried.length).to.equal(bad.seen.length).and.to.be.greaterThan(0);
    for (const l of sc.access) expect(l).to.include({ status: 200, upstream: `127.0.0.1:${good.port}` }).and.not.have.property('flags');
    expect(good.seen.filter((s) => s.headers['x-outrigger-attempt-count'] === '2')).to.have.length(retried.length);
    expect(good.seen.filter((s) => s.headers['x-outrigger-attempt-count'] === undefined)).to.have.length(6 - retried.length);
    expect(bad.seen.every((s) => s.headers['x-outrigger-attempt-count'] === undefined)).to.equal(true);
    expect(await metric(sc, 'outrigger_upstream_retries_total{cluster="c",kind="retry"}')).to.equal(retried.length);
    expect(await metric(sc, 'outrigger_upstream_requests_total{cluster="c",outcome="server_error"}')).to.equal(retried.length);
    expect(await metric(sc, 'outrigger_upstream_requests_total{cluster="c",outcome="success"}')).to.equal(6);
  });

  it('exhausted: every endpoint answers 503; the client gets the last upstream answer, flag URX, numRetries + 1 attempts', async () => {
    const a = await h1Backend('a', statusAnswer(503, 'from-a'));
    const b = await h1Backend('b', statusAnswer(503, 'from-b'));
    closers.push(a.close, b.close);
    const sc = await sidecar([
      listener('main'),
      routes('main', [prefixRoute('/', 'c', { retryPolicy: { retryOn: ['gateway-error'], numRetries: 3, retryBackOff: { baseInterval: '0.005s' } } })]),
      cluster('c', [a.port, b.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    const r = await get(sc);
    expect(r.status).to.equal(503);
    expect(['from-a', 'from-b']).to.include(r.body);
    expect(r.headers.get('x-from')).to.equal(r.body); // relayed as is, not a local reply
    expect(r.headers.get('x-outrigger-local-reply')).to.equal(null);
    expect(a.seen.length + b.seen.length).to.equal(4);
    // previousHosts with two endpoints: the attempts alternate.
    expect(Math.abs(a.seen.length - b.seen.length)).to.equal(0);
    await waitFor(() => sc.access.length === 1, 'access log');
    expect(sc.access[0]).to.include({ status: 503, flags: 'URX', attempts: 4 });
  });

  it('connect failures: a dead endpoint is retried (connect-failure); with nothing alive the UF reply is flagged UF,URX', async () => {
    const live = await h1Backend('live');
    closers.push(live.close);
    const dead = await deadPort();
    const sc = await sidecar([
      listener('main'),
      routes('main', [
        prefixRoute('/one', 'c', { retryPolicy: { retryOn: ['connect-failure'] } }),
        prefixRoute('/none', 'd', { retryPolicy: { retryOn: ['connect-failure'] } }),
      ]),
      cluster('c', [dead, live.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      cluster('d', [dead], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    for (let i = 0; i < 4; i++) expect(await get(sc, '/one')).to.include({ status: 200, body: 'live' });
    const none = await get(sc, '/none');
    expect(none.status).to.equal(503);
    expect(none.headers.get('x-outrigger-local-reply')).to.equal('UF');
    await waitFor(() => sc.access.length === 5, 'access log');
    expect(sc.access[4]).to.include({ flags: 'UF,URX', attempts: 2 });
    expect(await metric(sc, 'outrigger_upstream_requests_total{cluster="c",outcome="connect_failure"}')).to.be.greaterThan(0);
  });

  it('gRPC: UNAVAILABLE (trailers-only) is retried; the retry carries grpc-previous-rpc-attempts: 1 and the caller\'s metadata', async () => {
    const down = await grpcBackend(() => ({ code: grpc.status.UNAVAILABLE }));
    const up = await grpcBackend(() => ({ reply: 'served' }));
    closers.push(down.close, up.close);
    const sc = await sidecar([
      listener('main'),
      routes('main', [{ name: 'g', match: { prefix: '/t.Svc/' }, route: { cluster: 'g', retryPolicy: { retryOn: ['unavailable'], numRetries: 1 } } }]),
      cluster('g', [down.port, up.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    ]);
    for (let i = 0; i < 4; i++) expect(await grpcCall(sc.port(), { 'x-user': `u${i}` }, 5000)).to.deep.equal({ code: 0, reply: 'served' });
    expect(down.seen.length).to.be.greaterThan(0);
    // The client's deadline bounds every attempt: a retry carries (as grpc-timeout) what is left of it.
    for (const ms of [...up.left, ...down.left]) expect(ms).to.be.within(1, 5000);
    const retries = up.seen.filter((m) => m.get('grpc-previous-rpc-attempts')[0] === '1');
    expect(retries).to.have.length(down.seen.length);
    for (const m of retries) expect(m.get('x-outrigger-attempt-count')).to.deep.equal(['2']);
    expect(up.seen.map((m) => m.get('x-user')[0]).sort()).to.deep.equal(['u0', 'u1', 'u2', 'u3']);
    expect(down.seen.every((m) => m.get('grpc-previous-rpc-attempts').length === 0)).to.equal(true);
    // Without the word, UNAVAILABLE is the answer.
    await sc.writeConfig([
      listener('main'),
      routes('main', [{ name: 'g', match: { prefix: '/t.Svc/' }, route: { cluster: 'g', retryPolicy: { retryOn: ['internal'] } } }]),
      cluster('g', [down.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    ]);
    await waitFor(async () => (await grpcCall(sc.port())).code === grpc.status.UNAVAILABLE, 'the new config');
  });

  it('HTTP/2 with a body: a connect failure is retried with the whole body replayed to the live endpoint', async () => {
    const echo = await startH2Echo('live');
    closers.push(echo.close);
    const sc = await sidecar([
      listener('main'),
      routes('main', [prefixRoute('/', 'c', { retryPolicy: { retryOn: ['connect-failure'] } })]),
      cluster('c', [await deadPort(), echo.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    ]);
    const session = http2.connect(`http://127.0.0.1:${sc.port()}`);
    closers.push(async () => void session.close());
    const body = Buffer.alloc(40_000, 7);
    for (let i = 0; i < 4; i++) {
      const req = session.request({ ':method': 'POST', ':path': '/upload' });
      // Sent in pieces, so the body is still arriving while the first attempt fails.
      req.write(body.subarray(0, 10_000));
      setImmediate(() => req.end(body.subarray(10_000)));
      const chunks: Buffer[] = [];
      const status = await new Promise<number>((resolve, reject) => {
        let s = 0;
        req.on('response', (h) => (s = Number(h[':status'])));
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => resolve(s));
        req.on('error', reject);
      });
      expect(status).to.equal(200);
      expect(JSON.parse(Buffer.concat(chunks).toString())).to.include({ backend: 'live', bodyBytes: 40_000 });
    }
  });

  it('a body larger than perRequestBufferLimitBytes is not retried (the first answer is relayed); a smaller one is', async () => {
    const a = await h1Backend('a', statusAnswer(503, 'a'));
    const b = await h1Backend('b', statusAnswer(503, 'b'));
    closers.push(a.close, b.close);
    const sc = await sidecar([
      listener('main'),
      routes('main', [prefixRoute('/', 'c', { retryPolicy: { retryOn: ['5xx'] }, perRequestBufferLimitBytes: 1024 })]),
      cluster('c', [a.port, b.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    const big = await get(sc, '/x', { method: 'POST', body: 'x'.repeat(4096) });
    expect(big.status).to.equal(503);
    expect(a.seen.length + b.seen.length).to.equal(1);
    expect([...a.seen, ...b.seen][0]!.bodyBytes).to.equal(4096);
    const small = await get(sc, '/x', { method: 'POST', body: 'x'.repeat(512) });
    expect(small.status).to.equal(503);
    expect(a.seen.length + b.seen.length).to.equal(3);
    expect([...a.seen, ...b.seen].map((s) => s.bodyBytes).sort()).to.deep.equal([4096, 512, 512].sort());
    await waitFor(() => sc.access.length === 2, 'access log');
    expect(sc.access[0]).to.not.have.property('flags');
    expect(sc.access[1]).to.include({ flags: 'URX', attempts: 2 });
  });

  it('a response whose head was relayed is never retried: a reset mid-stream reaches the client', async () => {
    let streams = 0;
    const server = http2.createServer();
    server.on('stream', (s) => {
      streams++;
      s.on('error', () => {});
      s.respond({ ':status': 200, 'content-type': 'application/grpc' });
      s.write(Buffer.from([0, 0, 0, 0, 1, 9]));
      setImmediate(() => resetStream(s, http2.constants.NGHTTP2_INTERNAL_ERROR));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as AddressInfo).port;
    const sc = await sidecar([
      listener('main'),
      routes('main', [prefixRoute('/', 'c', { retryPolicy: { retryOn: ['5xx', 'reset', 'internal'], numRetries: 3 } })]),
      cluster('c', [port, port], 'UPSTREAM_PROTOCOL_HTTP2'),
    ]);
    const r = await grpcCall(sc.port());
    expect(r.code).to.not.equal(0);
    expect(streams).to.equal(1);
    await waitFor(() => sc.access.length === 1, 'access log');
    expect(sc.access[0]).to.include({ flags: 'UR' }).and.not.have.property('attempts');
  });

  it('the route timeout bounds all attempts (perTryTimeout retries stop at it: 504 UT)', async () => {
    const held: http.ServerResponse[] = [];
    const hang = await h1Backend('hang', (_n, _req, res) => void held.push(res));
    closers.push(hang.close);
    const sc = await sidecar([
      listener('main'),
      routes('main', [
        prefixRoute('/', 'c', { timeout: '0.4s', retryPolicy: { retryOn: ['reset'], numRetries: 10, perTryTimeout: '0.1s', retryBackOff: { baseInterval: '0.001s' } } }),
      ]),
      cluster('c', [hang.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    const t0 = performance.now();
    const r = await get(sc);
    const took = performance.now() - t0;
    expect(r.status).to.equal(504);
    expect(r.headers.get('x-outrigger-local-reply')).to.equal('UT');
    expect(took).to.be.at.least(390);
    expect(took).to.be.below(5000); // a failure bound only
    await waitFor(() => sc.access.length === 1, 'access log');
    expect(sc.access[0]).to.include({ flags: 'UT' });
    // About four 0.1 s tries fit in 0.4 s (fewer if the event loop stalls): each ended as a timeout, none after the deadline.
    const attempts = (sc.access[0]!.attempts as number | undefined) ?? 1;
    expect(attempts).to.be.within(1, 5);
    expect(hang.seen.length).to.be.at.most(attempts);
    expect(await metric(sc, 'outrigger_upstream_requests_total{cluster="c",outcome="timeout"}')).to.equal(attempts);
    // Nothing outlives the deadline: no attempt in flight, no retry waiting for its backoff (it would hold a slot).
    const runtime = sc.sidecar.listeners.current()!.clusters.get('c')!;
    expect(runtime.stats.activeTotal).to.equal(0);
    expect(runtime.activeRetries).to.equal(0);
  });

  it('the retry budget stops retries: over it the last answer is relayed with x-outrigger-overloaded, flag UO, counted (d)', async () => {
    const held: http.ServerResponse[] = [];
    let mode: 'hold' | 'ok' = 'hold';
    const answer = (_n: number, _req: http.IncomingMessage, res: http.ServerResponse): void => {
      if (mode === 'ok') res.writeHead(200).end('ok');
      else held.push(res);
    };
    const a = await h1Backend('a', answer);
    const b = await h1Backend('b', answer);
    closers.push(a.close, b.close);
    const sc = await sidecar([
      listener('main'),
      routes('main', [
        prefixRoute('/', 'c', { retryPolicy: { retryOn: ['5xx'], numRetries: 3, retryBudget: { budgetPercent: 0, minRetryConcurrency: 2 } } }),
      ]),
      cluster('c', [a.port, b.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    const replies = Array.from({ length: 5 }, () => get(sc));
    await waitFor(() => held.length === 5, 'five first attempts at the backends');
    // All five fail together: two retries fit in the budget, three do not.
    for (const res of held.splice(0)) res.writeHead(503).end('busy');
    await waitFor(() => held.length === 2, 'two retries at the backends');
    await waitFor(() => sc.access.length === 3, 'three answers');
    for (const l of sc.access) expect(l).to.include({ status: 503, flags: 'UO' });
    mode = 'ok';
    for (const res of held.splice(0)) res.writeHead(200).end('ok');
    const all = await Promise.all(replies);
    expect(all.filter((r) => r.status === 200 && r.body === 'ok')).to.have.length(2);
    const refused = all.filter((r) => r.status === 503);
    expect(refused).to.have.length(3);
    for (const r of refused) {
      expect(r.body).to.equal('busy');
      expect(r.headers.get('x-outrigger-overloaded')).to.equal('true');
    }
    expect(await metric(sc, 'outrigger_upstream_overflow_total{cluster="c",limit="retry_budget"}')).to.equal(3);
    expect(await metric(sc, 'outrigger_upstream_retries_total{cluster="c",kind="retry"}')).to.equal(2);
    // Nothing is left holding a retry slot.
    expect(sc.sidecar.listeners.current()!.clusters.get('c')!.activeRetries).to.equal(0);
  });

  it('transcoded REST and Connect calls retry through the same runner (a dead endpoint beside a live gRPC backend)', async () => {
    const echo = await startEchoBackend();
    closers.push(() => echo.close());
    const sc = await sidecar([
      listener('main'),
      routes('main', [
        { name: 'rest', match: { prefix: '/' }, route: { cluster: 'echo', transcode: { descriptorBin: ECHO_DESCRIPTOR }, retryPolicy: { retryOn: ['connect-failure'] } } },
      ]),
      cluster('echo', [await deadPort(), echo.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    ]);
    for (let i = 0; i < 4; i++) {
      const r = await requestJson(`http://127.0.0.1:${sc.port()}/v1/samples`, { method: 'POST', body: JSON.stringify({ name: `s${i}` }), headers: { 'content-type': 'application/json' } });
      expect(r.status).to.equal(200);
      expect(r.json).to.include({ name: `s${i}` });
    }
    const c = await requestJson(`http://127.0.0.1:${sc.port()}/outrigger.examples.transcoding.v1.EchoService/Create`, {
      method: 'POST',
      body: JSON.stringify({ name: 'connect' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(c.status).to.equal(200);
    expect(c.json).to.include({ name: 'connect' });
    await waitFor(() => sc.access.length === 5, 'access log');
    expect(sc.access.filter((l) => l.attempts === 2).length).to.be.at.least(2);
    for (const l of sc.access) expect(l).to.include({ status: 200 }).and.not.have.property('flags');
  });

  it('a transcoded call whose retry a limit refuses says so too: x-outrigger-overloaded on the REST and Connect errors, flag UO', async () => {
    const sc = await sidecar([
      listener('main'),
      routes('main', [
        { name: 'rest', match: { prefix: '/' }, route: { cluster: 'echo', transcode: { descriptorBin: ECHO_DESCRIPTOR }, retryPolicy: { retryOn: ['connect-failure'] } } },
      ]),
      // maxRetries 0: the connect failure's retry is refused at once.
      cluster('echo', [await deadPort()], 'UPSTREAM_PROTOCOL_HTTP2', { circuitBreakers: { maxRetries: 0 } }),
    ]);
    const rest = await requestJson(`http://127.0.0.1:${sc.port()}/v1/samples`, { method: 'POST', body: JSON.stringify({ name: 's' }), headers: { 'content-type': 'application/json' } });
    expect(rest.status).to.equal(503);
    expect(rest.headers['x-outrigger-overloaded']).to.equal('true');
    const connect = await fetch(`http://127.0.0.1:${sc.port()}/outrigger.examples.transcoding.v1.EchoService/Create`, {
      method: 'POST',
      body: JSON.stringify({ name: 'connect' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(connect.status).to.equal(503);
    expect(connect.headers.get('x-outrigger-overloaded')).to.equal('true');
    expect(await connect.json()).to.include({ code: 'unavailable' });
    await waitFor(() => sc.access.length === 2, 'access log');
    for (const l of sc.access) expect(l).to.include({ status: 503, flags: 'UO' });
  });

  it('an invalid retry policy is refused with its field path and the last good config keeps serving', async () => {
    const good = await h1Backend('good');
    closers.push(good.close);
    const docs = (numRetries: number) => [
      listener('main'),
      routes('main', [prefixRoute('/', 'c', { retryPolicy: { retryOn: ['5xx'], numRetries } })]),
      cluster('c', [good.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ];
    const sc = await sidecar(docs(2));
    const version = sc.sidecar.listeners.current()!.version;
    await sc.writeConfig(docs(11));
    await waitFor(() => sc.logs.some((l) => JSON.stringify(l).includes('route.retryPolicy.numRetries: at most 10, got 11')), 'the rejection logged with its path');
    expect(sc.sidecar.listeners.current()!.version).to.equal(version);
    expect(await get(sc)).to.include({ status: 200, body: 'good' });
    expect(await sc.metrics()).to.include('outrigger_config_reloads_total{result="rejected"} 1');
  });
});

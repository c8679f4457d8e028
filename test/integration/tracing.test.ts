import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { collector, startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { formatTapEvent, runTap } from '../../src/cli/tap-command.js';
import { waitFor } from '../support/wait.js';
import { serviceDefinitionFor } from '../../examples/bookstore/grpc-service.js';
import { EchoService, SampleSchema } from '../../src/gen/outrigger/examples/transcoding/v1/echo_pb.js';
import { create, toBinary } from '@bufbuild/protobuf';
import { startWsEcho } from '../support/backends.js';
import { ECHO_DESCRIPTOR, requestJson } from '../support/transcode-harness.js';
import { OtlpReceiver, SPAN_KIND_CLIENT, SPAN_KIND_SERVER } from '../support/otlp-receiver.js';
import { resolveTracing, type TracingFlags } from '../../src/observability/trace-config.js';

/** An HTTP/1.1 backend answering `answer(n)` (n from 1) that records the request headers. */
async function h1Backend(answer: (n: number, res: http.ServerResponse) => void) {
  const seen: IncomingHttpHeaders[] = [];
  const srv = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push(req.headers);
      answer(seen.length, res);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as AddressInfo).port,
    seen,
    close: () => {
      srv.closeAllConnections();
      return new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

/** A grpc-js backend with /t.Svc/Call (raw bytes) that records each call's metadata. */
async function grpcBackend() {
  const seen: grpc.Metadata[] = [];
  const server = new grpc.Server();
  const id = (b: Buffer): Buffer => b;
  server.addService(
    { call: { path: '/t.Svc/Call', requestStream: false, responseStream: false, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } },
    {
      call: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        seen.push(call.metadata);
        cb(null, Buffer.from('ok'));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port, seen, close: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
}

function grpcCall(port: number, md: Record<string, string> = {}): Promise<number> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const meta = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) meta.set(k, v);
  const id = (b: Buffer): Buffer => b;
  return new Promise((resolve) => {
    client.makeUnaryRequest('/t.Svc/Call', id, id, Buffer.from('hi'), meta, (err) => {
      client.close();
      resolve(err ? err.code : 0);
    });
  });
}

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

function traceparentOf(v: unknown): { traceId: string; spanId: string; flags: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(v));
  if (!m) throw new Error(`not a traceparent: ${String(v)}`);
  return { traceId: m[1]!, spanId: m[2]!, flags: m[3]! };
}

describe('tracing (issue 18 point 1): spans over OTLP, propagation', function () {
  this.timeout(20_000);
  let otlp: OtlpReceiver;
  const closers: (() => Promise<void>)[] = [];
  before(async () => {
    otlp = await OtlpReceiver.start();
  });
  after(() => otlp.close());
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
    otlp.spans.length = 0;
  });

  async function sidecar(docs: Parameters<typeof startTestSidecar>[0], flags: TracingFlags, env: Record<string, string> = {}): Promise<TestSidecar> {
    const tracing = resolveTracing(flags, { OTEL_BSP_SCHEDULE_DELAY: '50', ...env });
    const sc = await startTestSidecar(docs, { telemetry: { tracing } });
    closers.push(() => sc.close());
    return sc;
  }

  it('a retried request (503 once): one server span, two sibling client spans (first, retry) in the same trace; each attempt carries its own span as parent (OTLP http/protobuf)', async () => {
    const be = await h1Backend((n, res) => (n === 1 ? res.writeHead(503).end('busy') : res.writeHead(200).end('ok')));
    closers.push(be.close);
    const sc = await sidecar(
      [listener('main'), routes('main', [prefixRoute('/', 'c', { retryPolicy: { retryOn: ['5xx'], numRetries: 2 } })]), cluster('c', [be.port], 'UPSTREAM_PROTOCOL_HTTP1')],
      { endpoint: otlp.httpEndpoint },
    );
    const r = await fetch(`http://127.0.0.1:${sc.port()}/orders/7`, { headers: { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'vendor=x' } });
    expect(r.status).to.equal(200);
    const spans = await otlp.waitFor((s) => s.length >= 3);
    expect(spans).to.have.length(3);
    const server = spans.find((s) => s.kind === SPAN_KIND_SERVER)!;
    const clients = spans.filter((s) => s.kind === SPAN_KIND_CLIENT).sort((a, b) => Number(a.attributes['outrigger.attempt_index']) - Number(b.attributes['outrigger.attempt_index']));
    expect(server).to.include({ traceId: TRACE, parentSpanId: PARENT, traceState: 'vendor=x' });
    expect(server.attributes).to.include({ 'http.request.method': 'GET', 'url.path': '/orders/7', 'http.response.status_code': 200, 'outrigger.cluster': 'c' });
    expect(server.resource['service.name']).to.be.a('string');
    expect(clients).to.have.length(2);
    for (const c of clients) expect(c).to.include({ traceId: TRACE, parentSpanId: server.spanId });
    expect(clients[0]!.attributes).to.include({ 'outrigger.attempt': 'first', 'http.response.status_code': 503, 'server.port': be.port });
    expect(clients[0]!.statusCode).to.equal(2);
    expect(clients[1]!.attributes).to.include({ 'outrigger.attempt': 'retry', 'http.response.status_code': 200 });
    expect(clients[0]!.spanId).to.not.equal(clients[1]!.spanId);
    // The backend saw each attempt's own span as its parent.
    expect(be.seen.map((h) => traceparentOf(h.traceparent))).to.deep.equal([
      { traceId: TRACE, spanId: clients[0]!.spanId, flags: '01' },
      { traceId: TRACE, spanId: clients[1]!.spanId, flags: '01' },
    ]);
    expect(be.seen[0]!.tracestate).to.equal('vendor=x');
    // Client spans lie within the server span.
    for (const c of clients) expect(c.startNs >= server.startNs && c.endNs <= server.endNs).to.equal(true);
    // The access log line carries the ids.
    await waitFor(() => sc.access.length === 1, 'access log');
    expect(sc.access[0]).to.include({ trace_id: TRACE, span_id: server.spanId, route: server.attributes['outrigger.route'] });
  });

  it('a hedged request: the attempts are sibling client spans (first, hedge); the one that lost is cancelled, not an error', async () => {
    // Two endpoints sharing one count: the first request is held (never answered), the second answered.
    let n = 0;
    const held: http.ServerResponse[] = [];
    const seen: IncomingHttpHeaders[] = [];
    const servers = await Promise.all(
      [0, 1].map(async () => {
        const srv = http.createServer((req, res) => {
          seen.push(req.headers);
          if (++n === 1) held.push(res);
          else res.writeHead(200).end('ok');
        });
        await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
        closers.push(() => {
          srv.closeAllConnections();
          return new Promise<void>((r) => srv.close(() => r()));
        });
        return (srv.address() as AddressInfo).port;
      }),
    );
    const sc = await sidecar(
      [listener('main'), routes('main', [prefixRoute('/', 'c', { hedgePolicy: { maxAttempts: 2, hedgingDelay: '0.05s' } })]), cluster('c', servers, 'UPSTREAM_PROTOCOL_HTTP1')],
      { endpoint: otlp.httpEndpoint },
    );
    expect((await fetch(`http://127.0.0.1:${sc.port()}/h`)).status).to.equal(200);
    const spans = await otlp.waitFor((s) => s.filter((x) => x.kind === SPAN_KIND_CLIENT).length >= 2 && s.some((x) => x.kind === SPAN_KIND_SERVER));
    const server = spans.find((s) => s.kind === SPAN_KIND_SERVER)!;
    const clients = spans.filter((s) => s.kind === SPAN_KIND_CLIENT);
    expect(clients.map((c) => c.attributes['outrigger.attempt']).sort()).to.deep.equal(['first', 'hedge']);
    for (const c of clients) expect(c.parentSpanId).to.equal(server.spanId);
    const first = clients.find((c) => c.attributes['outrigger.attempt'] === 'first')!;
    expect(first.attributes['outrigger.attempt_result']).to.equal('cancelled');
    expect(first.statusCode).to.equal(0);
    expect(seen.map((h) => traceparentOf(h.traceparent).spanId).sort()).to.deep.equal(clients.map((c) => c.spanId).sort());
  });

  it('gRPC: traceparent reaches a grpc-js backend; rpc.* attributes; a sidecar starts a trace when none arrives (OTLP gRPC)', async () => {
    const be = await grpcBackend();
    closers.push(be.close);
    const sc = await sidecar(
      [listener('main'), routes('main', [prefixRoute('/', 'g')]), cluster('g', [be.port], 'UPSTREAM_PROTOCOL_HTTP2')],
      { endpoint: otlp.grpcEndpoint, protocol: 'grpc' },
    );
    expect(await grpcCall(sc.port())).to.equal(0);
    const spans = await otlp.waitFor((s) => s.length >= 2);
    const server = spans.find((s) => s.kind === SPAN_KIND_SERVER)!;
    const client = spans.find((s) => s.kind === SPAN_KIND_CLIENT)!;
    expect(server.parentSpanId).to.equal(''); // a new trace, begun here
    expect(server.name).to.equal('t.Svc/Call');
    expect(server.attributes).to.include({ 'rpc.system': 'grpc', 'rpc.service': 't.Svc', 'rpc.method': 'Call', 'rpc.grpc.status_code': 0 });
    expect(client.attributes).to.include({ 'rpc.system': 'grpc', 'rpc.method': 'Call', 'rpc.grpc.status_code': 0, 'outrigger.attempt': 'first' });
    const tp = traceparentOf(be.seen[0]!.get('traceparent')[0]);
    expect(tp).to.deep.equal({ traceId: server.traceId, spanId: client.spanId, flags: '01' });
    expect(client.parentSpanId).to.equal(server.spanId);
  });

  it('B3 in, W3C out (--trace-propagators tracecontext,b3): the B3 trace continues as traceparent', async () => {
    const be = await h1Backend((_n, res) => res.writeHead(200).end('ok'));
    closers.push(be.close);
    const sc = await sidecar([listener('main'), routes('main', [prefixRoute('/', 'c')]), cluster('c', [be.port], 'UPSTREAM_PROTOCOL_HTTP1')], {
      endpoint: otlp.httpEndpoint,
      propagators: 'tracecontext,b3',
    });
    expect((await fetch(`http://127.0.0.1:${sc.port()}/`, { headers: { b3: `${TRACE}-${PARENT}-1` } })).status).to.equal(200);
    const tp = traceparentOf(be.seen[0]!.traceparent);
    expect(tp.traceId).to.equal(TRACE);
    expect(tp.flags).to.equal('01');
    const spans = await otlp.waitFor((s) => s.length >= 2);
    expect(spans.find((s) => s.kind === SPAN_KIND_SERVER)).to.include({ traceId: TRACE, parentSpanId: PARENT });
    // The B3 header goes on too, with the attempt's span.
    expect(String(be.seen[0]!.b3)).to.equal(`${TRACE}-${tp.spanId}-1`);
  });

  it('sampled out (ratio 0): no spans, the trace goes on with sampled=0; x-outrigger-force-trace records one (and is not forwarded)', async () => {
    const be = await h1Backend((_n, res) => res.writeHead(200).end('ok'));
    closers.push(be.close);
    const sc = await sidecar([listener('main'), routes('main', [prefixRoute('/', 'c')]), cluster('c', [be.port], 'UPSTREAM_PROTOCOL_HTTP1')], {
      endpoint: otlp.httpEndpoint,
      sampling: '0',
    });
    expect((await fetch(`http://127.0.0.1:${sc.port()}/a`)).status).to.equal(200);
    expect((await fetch(`http://127.0.0.1:${sc.port()}/b`, { headers: { traceparent: `00-${TRACE}-${PARENT}-00` } })).status).to.equal(200);
    expect((await fetch(`http://127.0.0.1:${sc.port()}/c`, { headers: { 'x-outrigger-force-trace': '1' } })).status).to.equal(200);
    const [a, b, c] = be.seen.map((h) => traceparentOf(h.traceparent));
    expect(a!.flags).to.equal('00');
    expect(b).to.deep.equal({ traceId: TRACE, spanId: PARENT, flags: '00' }); // passed on as it came
    expect(c!.flags).to.equal('01');
    expect(be.seen[2]!['x-outrigger-force-trace']).to.equal(undefined);
    const spans = await otlp.waitFor((s) => s.length >= 2);
    expect(spans.every((s) => s.traceId === c!.traceId)).to.equal(true);
    await waitFor(() => sc.access.length === 3, 'access log');
    expect(sc.access.map((l) => l.trace_id)).to.deep.equal([a!.traceId, TRACE, c!.traceId]);
  });

  it('Listener.tracing (issue 18): an ingress listener at 1.0 and an outbound one at 0 over the sidecar\'s 0.5; a listener with tracing disabled reads and writes no trace context', async () => {
    const be = await h1Backend((_n, res) => res.writeHead(200).end('ok'));
    closers.push(be.close);
    const sc = await sidecar(
      [
        listener('ingress', { tracing: { sampling: 1 } }),
        listener('outbound', { tracing: { sampling: 0 } }),
        listener('plain', { tracing: { disabled: true } }),
        routes('main', [prefixRoute('/', 'c')]),
        cluster('c', [be.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      ],
      { endpoint: otlp.httpEndpoint, sampling: '0.5' },
    );
    const N = 12;
    for (let i = 0; i < N; i++) expect((await fetch(`http://127.0.0.1:${sc.port('ingress')}/in/${i}`)).status).to.equal(200);
    for (let i = 0; i < N; i++) expect((await fetch(`http://127.0.0.1:${sc.port('outbound')}/out/${i}`)).status).to.equal(200);
    // Parent-based still wins over the listener's ratio, and the force header still records.
    expect((await fetch(`http://127.0.0.1:${sc.port('outbound')}/out/parent`, { headers: { traceparent: `00-${TRACE}-${PARENT}-01` } })).status).to.equal(200);
    expect((await fetch(`http://127.0.0.1:${sc.port('outbound')}/out/forced`, { headers: { 'x-outrigger-force-trace': '1' } })).status).to.equal(200);
    // Disabled: a traceparent that arrives passes through untouched (no span of ours in between), none is added.
    expect((await fetch(`http://127.0.0.1:${sc.port('plain')}/plain/a`)).status).to.equal(200);
    expect((await fetch(`http://127.0.0.1:${sc.port('plain')}/plain/b`, { headers: { traceparent: `00-${TRACE}-${PARENT}-01` } })).status).to.equal(200);

    const flags = be.seen.map((h) => (h.traceparent === undefined ? undefined : traceparentOf(h.traceparent).flags));
    expect(flags.slice(0, N)).to.deep.equal(Array(N).fill('01'));
    expect(flags.slice(N, 2 * N)).to.deep.equal(Array(N).fill('00'));
    expect(flags.slice(2 * N, 2 * N + 2)).to.deep.equal(['01', '01']);
    expect(be.seen[2 * N + 2]!.traceparent).to.equal(undefined);
    expect(be.seen[2 * N + 3]!.traceparent).to.equal(`00-${TRACE}-${PARENT}-01`);

    // Server spans: every ingress request, the outbound parent-sampled and forced ones, nothing from "plain".
    const spans = await otlp.waitFor((s) => s.filter((x) => x.kind === SPAN_KIND_SERVER).length >= N + 2);
    const servers = spans.filter((x) => x.kind === SPAN_KIND_SERVER).map((x) => String(x.attributes['url.path']));
    expect(servers.filter((p) => p.startsWith('/in/'))).to.have.length(N);
    expect(servers.filter((p) => p.startsWith('/out/')).sort()).to.deep.equal(['/out/forced', '/out/parent']);
    expect(servers.filter((p) => p.startsWith('/plain/'))).to.deep.equal([]);
    await waitFor(() => sc.access.length === 2 * N + 4, 'access log');
    const plain = sc.access.filter((l) => String(l.path).startsWith('/plain/'));
    expect(plain.map((l) => l.trace_id)).to.deep.equal([undefined, undefined]);
  });

  it('a dead collector costs requests nothing: every request succeeds, and the failed exports are counted as dropped spans', async () => {
    const dead = http.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadPort = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const be = await grpcBackend();
    closers.push(be.close);
    const sc = await sidecar([listener('main'), routes('main', [prefixRoute('/', 'g')]), cluster('g', [be.port], 'UPSTREAM_PROTOCOL_HTTP2')], {
      endpoint: `http://127.0.0.1:${deadPort}`,
    }, { OTEL_BSP_EXPORT_TIMEOUT: '500' });
    for (let i = 0; i < 20; i++) expect(await grpcCall(sc.port())).to.equal(0);
    const dropped = async (): Promise<number> => {
      const line = (await sc.metrics()).split('\n').find((l) => l.startsWith('outrigger_trace_spans_dropped_total{reason="export_failed"}'));
      return line === undefined ? 0 : Number(line.split(' ').pop());
    };
    await waitFor(async () => (await dropped()) >= 40, 'dropped spans counted', 10_000);
    expect(be.seen).to.have.length(20);
  });

  it('transcoded REST, Connect, gRPC-Web and the WebSocket bridge: the gRPC call carries the trace; its client span is the gRPC method', async () => {
    // The Echo service, recording each call's metadata.
    const seen: grpc.Metadata[] = [];
    const server = new grpc.Server();
    server.addService(serviceDefinitionFor(EchoService), {
      create: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        seen.push(call.metadata);
        cb(null, call.request);
      },
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    closers.push(() => new Promise<void>((r) => server.tryShutdown(() => r())));
    const sc = await sidecar(
      [
        listener('main'),
        routes('main', [{ name: 'rest', match: { prefix: '/' }, route: { cluster: 'echo', transcode: { descriptorBin: ECHO_DESCRIPTOR, websocket: {} } } }]),
        cluster('echo', [port], 'UPSTREAM_PROTOCOL_HTTP2'),
      ],
      { endpoint: otlp.httpEndpoint },
    );
    const headers = { 'content-type': 'application/json', traceparent: `00-${TRACE}-${PARENT}-01` };
    const rest = await requestJson(`http://127.0.0.1:${sc.port()}/v1/samples`, { method: 'POST', body: JSON.stringify({ name: 's' }), headers });
    expect(rest.status).to.equal(200);
    const connect = await requestJson(`http://127.0.0.1:${sc.port()}/outrigger.examples.transcoding.v1.EchoService/Create`, { method: 'POST', body: JSON.stringify({ name: 'c' }), headers });
    expect(connect.status).to.equal(200);
    // gRPC-Web: one length-prefixed protobuf message.
    const msg = toBinary(SampleSchema, create(SampleSchema, { name: 'w' }));
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), Buffer.from(msg)]);
    const web = await fetch(`http://127.0.0.1:${sc.port()}/outrigger.examples.transcoding.v1.EchoService/Create`, {
      method: 'POST',
      body: frame,
      headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1', traceparent: `00-${TRACE}-${PARENT}-01` },
    });
    expect(web.status).to.equal(200);
    await web.arrayBuffer();
    // The WebSocket bridge: one unary call over the JSON subprotocol.
    const ws = new WebSocket(`ws://127.0.0.1:${sc.port()}/outrigger.examples.transcoding.v1.EchoService/Create`, ['grpc-ws+json'], { headers: { traceparent: `00-${TRACE}-${PARENT}-01` } });
    const closed = new Promise<void>((r) => ws.once('close', () => r()));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ name: 'ws' }));
    ws.send('');
    await closed;
    const spans = await otlp.waitFor((s) => s.length >= 8);
    const clients = spans.filter((s) => s.kind === SPAN_KIND_CLIENT);
    expect(clients).to.have.length(4);
    for (const c of clients) {
      expect(c.traceId).to.equal(TRACE);
      expect(c.name).to.equal('outrigger.examples.transcoding.v1.EchoService/Create');
      expect(c.attributes).to.include({ 'rpc.system': 'grpc', 'rpc.service': 'outrigger.examples.transcoding.v1.EchoService', 'rpc.method': 'Create', 'rpc.grpc.status_code': 0 });
    }
    expect(seen.map((m) => traceparentOf(m.get('traceparent')[0]).spanId).sort()).to.deep.equal(clients.map((c) => c.spanId).sort());
    const protocols = spans.filter((s) => s.kind === SPAN_KIND_SERVER).map((s) => s.attributes['network.protocol.name']);
    expect(protocols.sort()).to.deep.equal(['connect', 'grpc-web', 'rest', 'websocket-bridge']);
  });

  it('WebSocket pass-through: the upgrade request carries the attempt span as parent', async () => {
    const be = await startWsEcho();
    closers.push(() => be.close());
    const sc = await sidecar([listener('main'), routes('main', [prefixRoute('/', 'c')]), cluster('c', [be.port], 'UPSTREAM_PROTOCOL_HTTP1')], {
      endpoint: otlp.httpEndpoint,
    });
    const ws = new WebSocket(`ws://127.0.0.1:${sc.port()}/live`, { headers: { traceparent: `00-${TRACE}-${PARENT}-01` } });
    const seen = await new Promise<{ headers: IncomingHttpHeaders }>((resolve, reject) => {
      ws.once('open', () => ws.send('whoami'));
      ws.once('message', (d) => resolve(JSON.parse(String(d)) as { headers: IncomingHttpHeaders }));
      ws.once('error', reject);
    });
    ws.close();
    const spans = await otlp.waitFor((s) => s.some((x) => x.kind === SPAN_KIND_CLIENT) && s.some((x) => x.kind === SPAN_KIND_SERVER));
    const client = spans.find((s) => s.kind === SPAN_KIND_CLIENT)!;
    expect(traceparentOf(seen.headers.traceparent)).to.deep.equal({ traceId: TRACE, spanId: client.spanId, flags: '01' });
    expect(client.parentSpanId).to.equal(spans.find((s) => s.kind === SPAN_KIND_SERVER)!.spanId);
  });

  it('trace ids in `outrigger tap` events and the audit log, the same as the access log and the server span', async () => {
    const be = await h1Backend((_n, res) => res.writeHead(200).end('ok'));
    closers.push(be.close);
    const audit: Record<string, unknown>[] = [];
    const tracing = resolveTracing({ endpoint: otlp.httpEndpoint }, { OTEL_BSP_SCHEDULE_DELAY: '50' });
    const sc = await startTestSidecar(
      [
        listener('main', {
          httpFilters: [
            { name: 'shadow', rbac: { action: 'RBAC_ACTION_LOG', policies: { watch: { permissions: [{ header: { name: 'x-watch', present: true } }], principals: [{ any: true }] } } } },
          ],
        }),
        routes('main', [prefixRoute('/', 'c')]),
        cluster('c', [be.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      ],
      { telemetry: { tracing }, auditLog: collector(audit) },
    );
    closers.push(() => sc.close());
    let out = '';
    let opened!: () => void;
    const open = new Promise<void>((r) => (opened = r));
    const tap = runTap(['--sidecar', `127.0.0.1:${sc.sidecar.adminPort}`, '--max', '1', '--json'], { out: (x) => void (out += x), err: (x) => void (out += x) }, opened);
    await open;
    expect((await fetch(`http://127.0.0.1:${sc.port()}/t`, { headers: { traceparent: `00-${TRACE}-${PARENT}-01`, 'x-watch': '1' } })).status).to.equal(200);
    expect(await tap).to.equal(0);
    const event = JSON.parse(out.trim()) as { trace_id: string };
    expect(event.trace_id).to.equal(TRACE);
    expect(formatTapEvent(event as never)).to.include(`trace=${TRACE}`);
    const server = (await otlp.waitFor((s) => s.some((x) => x.kind === SPAN_KIND_SERVER))).find((x) => x.kind === SPAN_KIND_SERVER)!;
    await waitFor(() => audit.length === 1 && sc.access.length === 1, 'audit and access lines');
    expect(audit[0]).to.include({ filter: 'shadow', outcome: 'logged', trace_id: TRACE, span_id: server.spanId });
    expect(sc.access[0]).to.include({ trace_id: TRACE, span_id: server.spanId });
  });
});

import { expect } from 'chai';
import { Registry } from 'prom-client';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { resolveTracing, buildTracer } from '../../../src/observability/trace-config.js';
import { parseTraceparent, Propagation } from '../../../src/observability/trace-propagation.js';
import { SpanExport } from '../../../src/observability/span-export.js';
import { FakeClock } from '../../support/fake-clock.js';
import { seededRandom } from '../../../src/core/random.js';

describe('tracing: configuration from flags and OTEL_* variables', () => {
  it('is off without an endpoint; OTEL_EXPORTER_OTLP_ENDPOINT or ..._TRACES_ENDPOINT alone turns it on', () => {
    expect(resolveTracing({}, {})).to.equal(undefined);
    const base = resolveTracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })!;
    expect(base).to.include({ protocol: 'http/protobuf', url: undefined }); // the SDK exporter reads the variable itself
    expect(resolveTracing({}, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' })).to.not.equal(undefined);
    expect(base.sampler).to.deep.equal({ parentBased: true, ratio: 1 });
    expect(base.propagators).to.deep.equal(['tracecontext', 'baggage']);
    expect(base.scheduledDelayMs).to.equal(1000);
  });

  it('flags win; a base URL gets /v1/traces for http/protobuf, gRPC takes the URL as is', () => {
    const env = { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_TRACES_SAMPLER: 'always_off' };
    expect(resolveTracing({ endpoint: 'http://c:4318', protocol: 'http/protobuf', sampling: '0.25' }, env)).to.deep.include({
      url: 'http://c:4318/v1/traces',
      sampler: { parentBased: true, ratio: 0.25 },
    });
    expect(resolveTracing({ endpoint: 'http://c:4318/custom' }, {})!.url).to.equal('http://c:4318/custom');
    expect(resolveTracing({ endpoint: 'http://c:4317' }, env)).to.deep.include({ protocol: 'grpc', url: 'http://c:4317' });
  });

  it('OTEL_TRACES_SAMPLER and its argument', () => {
    const s = (OTEL_TRACES_SAMPLER: string, OTEL_TRACES_SAMPLER_ARG?: string) =>
      resolveTracing({ endpoint: 'http://c:4318' }, { OTEL_TRACES_SAMPLER, ...(OTEL_TRACES_SAMPLER_ARG ? { OTEL_TRACES_SAMPLER_ARG } : {}) })!.sampler;
    expect(s('parentbased_traceidratio', '0.1')).to.deep.equal({ parentBased: true, ratio: 0.1 });
    expect(s('traceidratio', '0.5')).to.deep.equal({ parentBased: false, ratio: 0.5 });
    expect(s('always_on')).to.deep.equal({ parentBased: false, ratio: 1 });
    expect(s('parentbased_always_off')).to.deep.equal({ parentBased: true, ratio: 0 });
  });

  it('rejects bad values, naming the flag or variable', () => {
    expect(() => resolveTracing({ endpoint: 'collector:4318' }, {})).to.throw(/--trace-otlp-endpoint/);
    expect(() => resolveTracing({ endpoint: 'http://c', protocol: 'http/json' }, {})).to.throw(/--trace-otlp-protocol: must be one of http\/protobuf, grpc/);
    expect(() => resolveTracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_PROTOCOL: 'thrift' })).to.throw(/OTEL_EXPORTER_OTLP_PROTOCOL/);
    expect(() => resolveTracing({ endpoint: 'http://c', sampling: '1.5' }, {})).to.throw(/--trace-sampling: a ratio in \[0, 1\]/);
    expect(() => resolveTracing({ endpoint: 'http://c', propagators: 'tracecontext,jaeger' }, {})).to.throw(/--trace-propagators: unknown propagator "jaeger"/);
    expect(() => resolveTracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_TRACES_SAMPLER: 'xray' })).to.throw(/OTEL_TRACES_SAMPLER/);
    expect(() => resolveTracing({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_BSP_MAX_QUEUE_SIZE: '-1' })).to.throw(/OTEL_BSP_MAX_QUEUE_SIZE/);
  });
});

describe('tracing: propagation', () => {
  it('parses traceparent per W3C (invalid ids, versions and layouts refused)', () => {
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')).to.deep.equal({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', sampled: true });
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00')!.sampled).to.equal(false);
    expect(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future')).to.not.equal(undefined);
    for (const bad of [
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
      '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01',
    ]) expect(parseTraceparent(bad), bad).to.equal(undefined);
  });

  it('B3 single and multi header in; every configured format out', () => {
    const p = new Propagation(['tracecontext', 'b3multi']);
    expect(p.extract({ 'x-b3-traceid': '4bf92f3577b34da6a3ce929d0e0e4736', 'x-b3-spanid': '00f067aa0ba902b7', 'x-b3-sampled': '1' })).to.deep.include({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', sampled: true });
    expect(p.extract({ b3: '4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0' })).to.deep.include({ spanId: '00f067aa0ba902b7', sampled: false });
    const h: Record<string, unknown> = {};
    p.inject(h, '4bf92f3577b34da6a3ce929d0e0e4736', '1111111111111111', true);
    expect(h).to.deep.include({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01', 'x-b3-traceid': '4bf92f3577b34da6a3ce929d0e0e4736', 'x-b3-spanid': '1111111111111111', 'x-b3-sampled': '1' });
    // W3C only: B3 headers are not read.
    expect(new Propagation(['tracecontext']).extract({ b3: '4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1' })).to.equal(undefined);
  });
});

describe('tracing: the tracer', () => {
  function tracer(ratio: number, parentBased = true) {
    const spans: ReadableSpan[] = [];
    const clock = new FakeClock();
    const t = buildTracer(
      { ...resolveTracing({ endpoint: 'http://c:4318' }, {})!, sampler: { parentBased, ratio } },
      { clock, random: seededRandom(7), registry: new Registry(), sink: { onEnd: (s) => void spans.push(s), forceFlush: async () => undefined, shutdown: async () => undefined } },
    );
    return { t, spans, clock };
  }

  it('a ratio decides new traces from the trace id; parent-based follows the flag that arrived', () => {
    const { t } = tracer(0.5);
    let sampled = 0;
    for (let i = 0; i < 2000; i++) if (t.begin({}).sampled) sampled++;
    expect(sampled).to.be.within(850, 1150);
    expect(t.begin({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }).sampled).to.equal(true);
    expect(tracer(1).t.begin({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' }).sampled).to.equal(false);
    expect(tracer(0).t.begin({ 'x-outrigger-force-trace': '1' }).sampled).to.equal(true);
  });

  it('sampled out: no span, and the attempt passes the context on with sampled=0', () => {
    const { t, spans } = tracer(0);
    const tr = t.begin({});
    const h: Record<string, unknown> = {};
    expect(t.attemptStarted(tr, h, 'GET', '/')).to.equal(undefined);
    expect(h.traceparent).to.equal(`00-${tr.traceId}-${tr.spanId}-00`);
    expect(spans).to.have.length(0);
  });

  it('a client span runs from the attempt start to its end on the injected clock, child of the server span', () => {
    const { t, spans, clock } = tracer(1);
    const tr = t.begin({});
    const h: Record<string, unknown> = { ':path': '/a.B/C', 'content-type': 'application/grpc' };
    const s = t.attemptStarted(tr, h, 'POST', '/a.B/C')!;
    clock.advance(25);
    t.attemptEnded(s, { cluster: 'c', endpointHost: '10.0.0.1', endpointPort: 80, index: 1, kind: 'retry', status: 200, grpcStatus: '14', flag: undefined, result: 'server_error' });
    const span = spans[0]!;
    expect(span.name).to.equal('a.B/C');
    expect(span.parentSpanContext!.spanId).to.equal(tr.spanId);
    expect(span.duration).to.deep.equal([0, 25e6]);
    expect(span.attributes).to.include({ 'rpc.service': 'a.B', 'rpc.method': 'C', 'rpc.grpc.status_code': 14, 'outrigger.attempt': 'retry', 'outrigger.attempt_index': 1 });
    expect(span.status.code).to.equal(2);
  });
});

describe('tracing: export queue', () => {
  it('a collector that never answers: the bounded queue fills and further spans are dropped and counted, never blocking onEnd', async () => {
    const registry = new Registry();
    let exports = 0;
    const stuck = { export: () => void exports++, shutdown: async () => undefined };
    const settings = { ...resolveTracing({ endpoint: 'http://c:4318' }, {})!, maxQueueSize: 4, maxExportBatchSize: 4, scheduledDelayMs: 60_000 };
    const spans: ReadableSpan[] = [];
    const t = buildTracer(settings, { clock: new FakeClock(), random: seededRandom(1), registry, sink: { onEnd: (s) => void spans.push(s), forceFlush: async () => undefined, shutdown: async () => undefined } });
    // Real spans from the tracer, through the real SpanExport in front of the stuck exporter.
    const exp = new SpanExport(registry, settings, stuck);
    for (let i = 0; i < 20; i++) t.exchangeEnded(t.begin({}), { method: 'GET', authority: 'a', path: '/', protocol: 'http1', status: 200, grpc_status: undefined, duration_ms: 1, bytes_in: 0, bytes_out: 0, upstream: undefined, route: 'r', cluster: 'c', request_id: undefined, trace_id: undefined, flags: undefined, headers: undefined, source_principal: undefined, upstream_principal: undefined }, 0, 1);
    for (const s of spans) exp.onEnd(s);
    expect(exports).to.equal(1); // one batch in flight, never answered
    const text = await registry.metrics();
    // 4 went to the stuck export, 4 wait in the queue, the other 12 are dropped.
    expect(text).to.include('outrigger_trace_spans_dropped_total{reason="queue_full"} 12');
  });
});

describe('tracing: ids', () => {
  const tracerWith = (random: { next(): number; int(n: number): number }) =>
    buildTracer(resolveTracing({ endpoint: 'http://c:4318', sampling: '1' }, {})!, {
      clock: new FakeClock(),
      random,
      registry: new Registry(),
      sink: { onEnd: () => undefined, forceFlush: async () => undefined, shutdown: async () => undefined },
    });

  it('are lowercase hex of 32 and 16 digits, the random words in order, most significant digit first', () => {
    const words = [0x0123abcd, 0xdeadbeef, 0x00000010, 0xfedcba98, 0x89abcdef, 0x7];
    let i = 0;
    const t = tracerWith({ next: () => 0, int: () => words[i++ % words.length]! }).begin({});
    expect(t.traceId).to.equal('0123abcddeadbeef00000010fedcba98');
    expect(t.spanId).to.equal('89abcdef00000007');
  });

  it('are never all zero (W3C: invalid); a seeded run is reproducible', () => {
    const zero = tracerWith({ next: () => 0, int: () => 0 }).begin({});
    expect(zero.traceId).to.equal('00000000000000000000000000000001');
    expect(zero.spanId).to.equal('0000000000000001');
    const a = tracerWith(seededRandom(7)).begin({});
    const b = tracerWith(seededRandom(7)).begin({});
    expect([a.traceId, a.spanId]).to.deep.equal([b.traceId, b.spanId]);
    expect(a.traceId).to.match(/^[0-9a-f]{32}$/);
  });
});

import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import { Registry } from 'prom-client';
import { SpanKind } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { buildTracer, resolveTracing } from '../../../src/observability/trace-config.js';
import { SpanEncoder, type EncodableSpan } from '../../../src/observability/span-encoding.js';
import { seededRandom } from '../../../src/core/random.js';
import type { Clock } from '../../../src/core/clock.js';
import type { ExchangeRecord } from '../../../src/observability/exchange-record.js';

const PROTO = fileURLToPath(new URL('../../support/otlp/trace-export.proto', import.meta.url));
const def = protoLoader.loadSync(PROTO, { keepCase: false, longs: String, defaults: true, oneofs: true });
const exportMethod = (def['opentelemetry.proto.collector.trace.v1.TraceService'] as protoLoader.ServiceDefinition).Export as protoLoader.MethodDefinition<unknown, unknown>;
const decode = (b: Uint8Array): unknown => exportMethod.requestDeserialize(Buffer.from(b));

/** A clock at a real epoch with sub-millisecond readings, so the nanosecond conversion is exercised. */
function clockAt(wallMs: number): Clock & { advance(ms: number): void } {
  let mono = 1000.123456;
  return {
    nowMs: () => wallMs,
    monotonicMs: () => mono,
    setTimer: () => ({ cancel: () => undefined }),
    advance: (ms) => void (mono += ms),
  };
}

function record(over: Partial<ExchangeRecord> = {}): ExchangeRecord {
  return {
    method: 'POST', authority: 'books:8080', path: '/pkg.Books/Get', protocol: 'grpc', status: 200, grpc_status: '14', duration_ms: 3.217, bytes_in: 7, bytes_out: 9,
    upstream: '10.0.0.7:8080', route: 'books', cluster: 'books', request_id: 'a3b1c2d4-1111-2222-3333-444455556666', trace_id: undefined, flags: 'URX', headers: undefined, source_principal: undefined, upstream_principal: undefined,
    ...over,
  };
}

describe('tracing: OTLP span encoding (span-encoding.ts)', () => {
  function spans(): ReadableSpan[] {
    const out: ReadableSpan[] = [];
    const clock = clockAt(1_764_750_000_123);
    const t = buildTracer(
      { ...resolveTracing({ endpoint: 'http://c:4318' }, {})!, sampler: { parentBased: true, ratio: 1 } },
      { clock, random: seededRandom(3), registry: new Registry(), serviceName: 'svc', sink: { onEnd: (s) => void out.push(s), forceFlush: async () => undefined, shutdown: async () => undefined } },
    );
    // A server span under a remote parent with tracestate; a gRPC attempt that failed (flag), and its retry.
    const start = clock.monotonicMs();
    const tr = t.begin({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'vendor=x,other=y' });
    const h: Record<string, unknown> = { ':path': '/pkg.Books/Get', ':method': 'POST', 'content-type': 'application/grpc' };
    const a1 = t.attemptStarted(tr, h, 'POST', '/pkg.Books/Get')!;
    clock.advance(1.5);
    t.attemptEnded(a1, { cluster: 'books', endpointHost: '10.0.0.7', endpointPort: 8080, index: 0, kind: 'first', status: 0, grpcStatus: undefined, flag: 'UF', result: 'connect_failure' });
    const a2 = t.attemptStarted(tr, h, 'POST', '/pkg.Books/Get')!;
    clock.advance(0.75);
    t.attemptEnded(a2, { cluster: 'books', endpointHost: '10.0.0.8', endpointPort: 8080, index: 1, kind: 'retry', status: 200, grpcStatus: '14', flag: undefined, result: 'server_error' });
    t.exchangeEnded(tr, record(), start, clock.monotonicMs());
    // A REST exchange starting its own trace, with non-ASCII path and authority and a value longer than 16 KiB (multi-byte lengths).
    const root = t.begin({});
    t.exchangeEnded(root, record({ protocol: 'rest', path: '/bücher/€', authority: 'bücher-katalog.example.com:8443', grpc_status: undefined, flags: undefined, request_id: 'x'.repeat(20_000), status: 503 }), clock.monotonicMs() - 1, clock.monotonicMs());
    // A span of internal work with the attribute kinds the control plane uses, and a child.
    const op = t.startSpan('control apply', SpanKind.SERVER)!;
    op.set('outrigger.revision', 42).set('outrigger.ok', true).set('outrigger.ratio', 0.25).set('outrigger.delta', -3);
    const child = t.startSpan('control push', SpanKind.INTERNAL, op)!;
    child.end(true);
    op.end();
    return out;
  }

  it('writes the same ExportTraceServiceRequest as the SDK serializer (decoded with the OTLP protos)', () => {
    const s = spans();
    expect(s).to.have.length(6);
    const ours = decode(new SpanEncoder().encode(s as unknown as EncodableSpan[]));
    const sdk = decode(ProtobufTraceSerializer.serializeRequest(s)!);
    expect(ours).to.deep.equal(sdk);
  });

  it('the encoder is reusable: a second batch through the same encoder (cached keys, resource and scope) decodes alike', () => {
    const enc = new SpanEncoder();
    const first = spans();
    enc.encode(first as unknown as EncodableSpan[]);
    const second = spans();
    expect(decode(enc.encode(second as unknown as EncodableSpan[]))).to.deep.equal(decode(ProtobufTraceSerializer.serializeRequest(second)!));
  });
});

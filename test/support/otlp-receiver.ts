import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

/** One received span, ids as lowercase hex, attributes flattened to JS values. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly traceState: string;
  readonly name: string;
  /** OTLP SpanKind: 2 server, 3 client. */
  readonly kind: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: Record<string, string | number | boolean>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
  readonly resource: Record<string, string | number | boolean>;
}

export const SPAN_KIND_SERVER = 2;
export const SPAN_KIND_CLIENT = 3;

const PROTO = fileURLToPath(new URL('./otlp/trace-export.proto', import.meta.url));
const SERVICE = 'opentelemetry.proto.collector.trace.v1.TraceService';

interface AnyValue { stringValue?: string; boolValue?: boolean; intValue?: string; doubleValue?: number; value?: string }
interface KeyValue { key: string; value?: AnyValue }
interface WireSpan {
  traceId: Buffer; spanId: Buffer; parentSpanId: Buffer; traceState: string; name: string; kind: number;
  startTimeUnixNano: string; endTimeUnixNano: string; attributes: KeyValue[]; status?: { code: number };
}
interface WireRequest { resourceSpans: { resource?: { attributes: KeyValue[] }; scopeSpans: { spans: WireSpan[] }[] }[] }

/**
 * A stand-in OTel collector: the OTLP/HTTP protobuf endpoint (POST
 * /v1/traces) and the OTLP/gRPC TraceService/Export on one port each,
 * decoding with the OTLP message definitions (otlp/trace-export.proto), so
 * the tests read what the SDK's exporters really put on the wire.
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  requests = 0;
  private waiters: (() => void)[] = [];

  private constructor(
    private readonly httpServer: http.Server,
    private readonly grpcServer: grpc.Server,
    readonly httpPort: number,
    readonly grpcPort: number,
  ) {}

  static async start(): Promise<OtlpReceiver> {
    const def = protoLoader.loadSync(PROTO, { keepCase: false, longs: String, defaults: true, oneofs: true });
    const svc = def[SERVICE] as protoLoader.ServiceDefinition;
    const exportDef = svc.Export as protoLoader.MethodDefinition<WireRequest, unknown>;
    let self: OtlpReceiver | undefined;
    const httpServer = http.createServer((req, res) => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.headers['content-type'] !== 'application/x-protobuf') return void res.writeHead(415).end();
        self!.accept(exportDef.requestDeserialize(Buffer.concat(chunks)));
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
    const grpcServer = new grpc.Server();
    grpcServer.addService(svc as unknown as grpc.ServiceDefinition, {
      Export: (call: grpc.ServerUnaryCall<WireRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        self!.accept(call.request);
        cb(null, {});
      },
    });
    const grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    self = new OtlpReceiver(httpServer, grpcServer, (httpServer.address() as AddressInfo).port, grpcPort);
    return self;
  }

  get httpEndpoint(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get grpcEndpoint(): string {
    return `http://127.0.0.1:${this.grpcPort}`;
  }

  /** Resolves once `pred` holds for the spans received (checked on each export). */
  async waitFor(pred: (spans: ReceivedSpan[]) => boolean, timeoutMs = 10_000): Promise<ReceivedSpan[]> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.spans)) {
      if (Date.now() > deadline) throw new Error(`OTLP receiver: condition not met; got ${this.spans.length} spans: ${this.spans.map((s) => s.name).join(', ')}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, Math.max(1, deadline - Date.now())).unref();
      });
    }
    return this.spans;
  }

  async close(): Promise<void> {
    this.httpServer.closeAllConnections();
    await new Promise<void>((r) => this.httpServer.close(() => r()));
    await new Promise<void>((r) => this.grpcServer.tryShutdown(() => r()));
  }

  private accept(req: WireRequest): void {
    this.requests++;
    for (const rs of req.resourceSpans) {
      const resource = attrs(rs.resource?.attributes ?? []);
      for (const ss of rs.scopeSpans) {
        for (const s of ss.spans) {
          this.spans.push({
            traceId: s.traceId.toString('hex'),
            spanId: s.spanId.toString('hex'),
            parentSpanId: s.parentSpanId.toString('hex'),
            traceState: s.traceState,
            name: s.name,
            kind: s.kind,
            startNs: BigInt(s.startTimeUnixNano),
            endNs: BigInt(s.endTimeUnixNano),
            attributes: attrs(s.attributes),
            statusCode: s.status?.code ?? 0,
            resource,
          });
        }
      }
    }
    for (const w of this.waiters.splice(0)) w();
  }
}

function attrs(kvs: KeyValue[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of kvs) {
    const v = kv.value;
    if (v === undefined) continue;
    if (v.value === 'stringValue') out[kv.key] = v.stringValue!;
    else if (v.value === 'boolValue') out[kv.key] = v.boolValue!;
    else if (v.value === 'intValue') out[kv.key] = Number(v.intValue);
    else if (v.value === 'doubleValue') out[kv.key] = v.doubleValue!;
  }
  return out;
}

import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Counter, type Registry } from 'prom-client';
import { systemClock, type Clock, type Timer } from '../core/clock.js';
import { SpanEncoder, type EncodableSpan } from './span-encoding.js';
import type { OtlpProtocol } from './trace-settings.js';

export interface ExportOptions {
  readonly protocol: OtlpProtocol;
  /** The exporter's URL; undefined: the exporter reads OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT itself. */
  readonly url: string | undefined;
  /** Spans waiting for export at most; a span finished while it is full is dropped (and counted). */
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
  /** How long a finished span waits for its batch at most. */
  readonly scheduledDelayMs: number;
  readonly exportTimeoutMs: number;
}

/**
 * A finished span. Ours (tracer.ts) are also EncodableSpans, which the OTLP
 * encoder reads directly; any other ReadableSpan in a batch sends that batch
 * through the SDK's own serializer.
 */
export type FinishedSpanRecord = ReadableSpan;

/** Where finished spans go: the export queue in front of an OTLP exporter, or a test's. */
export interface SpanSink {
  onEnd(span: FinishedSpanRecord): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** What the queue hands a batch to (the SDK exporter with our encoder, or a test's). */
export interface BatchExporter {
  export(spans: FinishedSpanRecord[], done: (r: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

/**
 * The export side of tracing: a bounded queue, batches, one export in flight.
 * `onEnd`, the only call on a request's path, appends a record to an array
 * (or counts a drop); a batch is taken when it is full or `scheduledDelayMs`
 * after its first span, and encoded and sent from a setImmediate — never
 * inside the request that filled it (the SDK's BatchSpanProcessor exports a
 * full batch synchronously in that request's onEnd).
 *
 * A slow or dead collector fills the queue; what does not fit is dropped and
 * counted in `outrigger_trace_spans_dropped_total{reason}` (queue_full,
 * export_failed), and an export that does not answer within
 * `exportTimeoutMs` is counted failed so the next can start.
 */
export class SpanExport implements SpanSink {
  private queue: FinishedSpanRecord[] = [];
  private inFlight = false;
  private timer: Timer | undefined;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private readonly dropped: Counter<'reason'>;
  private readonly exported: Counter;

  constructor(
    registry: Registry,
    private readonly o: ExportOptions,
    private readonly exporter: BatchExporter = createExporter(o),
    private readonly clock: Clock = systemClock(),
  ) {
    this.dropped = new Counter({
      name: 'outrigger_trace_spans_dropped_total',
      help: 'Finished spans not exported: the export queue was full, or the collector refused or could not be reached',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.exported = new Counter({ name: 'outrigger_trace_spans_exported_total', help: 'Spans the collector accepted', registers: [registry] });
  }

  onEnd(span: FinishedSpanRecord): void {
    if (this.stopped) return;
    const q = this.queue;
    if (q.length >= this.o.maxQueueSize) {
      this.dropped.inc({ reason: 'queue_full' });
      return;
    }
    q.push(span);
    if (this.inFlight) return;
    if (q.length >= this.o.maxExportBatchSize) this.send();
    else this.timer ??= this.clock.setTimer(this.o.scheduledDelayMs, () => this.send());
  }

  /** Exports everything queued; resolves when the last batch is answered (or timed out). */
  async forceFlush(): Promise<void> {
    while (this.queue.length > 0 || this.inFlight) {
      if (!this.inFlight) this.send();
      await new Promise<void>((r) => this.idleWaiters.push(r));
    }
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    this.stopped = true;
    this.timer?.cancel();
    await this.exporter.shutdown();
  }

  /** Takes one batch off the queue now; it is encoded and sent on the next turn of the event loop. */
  private send(): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (this.inFlight || this.queue.length === 0) return;
    const max = this.o.maxExportBatchSize;
    let batch: FinishedSpanRecord[];
    if (this.queue.length <= max) {
      batch = this.queue;
      this.queue = [];
    } else {
      batch = this.queue.slice(0, max);
      this.queue = this.queue.slice(max);
    }
    this.inFlight = true;
    let answered = false;
    const timeout = this.clock.setTimer(this.o.exportTimeoutMs, () => finish({ code: ExportResultCode.FAILED, error: new Error('export timed out') }));
    const finish = (r: ExportResult): void => {
      if (answered) return;
      answered = true;
      timeout.cancel();
      if (r.code === ExportResultCode.SUCCESS) this.exported.inc(batch.length);
      else this.dropped.inc({ reason: 'export_failed' }, batch.length);
      this.inFlight = false;
      const q = this.queue;
      if (q.length >= this.o.maxExportBatchSize) setImmediate(() => this.send());
      else if (q.length > 0 && !this.stopped) this.timer ??= this.clock.setTimer(this.o.scheduledDelayMs, () => this.send());
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    };
    this.exporter.export(batch, finish);
  }
}

/**
 * The SDK's OTLP exporter (`@opentelemetry/otlp-exporter-base`'s HTTP and
 * `otlp-grpc-exporter-base`'s gRPC delegates: transport, retries, timeouts,
 * headers, compression and the OTEL_EXPORTER_OTLP_* settings — exactly what
 * `exporter-trace-otlp-proto` / `-grpc` assemble) with our span encoder in
 * place of the SDK's serializer (span-encoding.ts says why). Imported on
 * first use: those packages are megabytes a sidecar with tracing off never
 * loads. Encoding runs in a setImmediate, off the request that filled the
 * batch; a batch that finds the import failed is reported failed (counted).
 */
function createExporter(o: ExportOptions): BatchExporter {
  const config = { url: o.url, timeoutMillis: o.exportTimeoutMs };
  let real: Promise<SpanExporter> | undefined;
  const load = (): Promise<SpanExporter> =>
    (real ??= Promise.all([import('@opentelemetry/otlp-exporter-base'), import('@opentelemetry/otlp-transformer')]).then(async ([base, transformer]) => {
      const encoder = new SpanEncoder();
      const serializer = {
        serializeRequest: (spans: FinishedSpanRecord[]) =>
          spans.every(isEncodable) ? encoder.encode(spans as unknown as EncodableSpan[]) : transformer.ProtobufTraceSerializer.serializeRequest(spans),
        deserializeResponse: (data: Uint8Array) => transformer.ProtobufTraceSerializer.deserializeResponse(data),
      };
      if (o.protocol === 'grpc') {
        const grpc = await import('@opentelemetry/otlp-grpc-exporter-base');
        const delegate = grpc.createOtlpGrpcExportDelegate(
          grpc.convertLegacyOtlpGrpcOptions(config, 'TRACES'),
          serializer,
          'otlp_grpc_span_exporter',
          transformer.TraceExporterMetricsHelper,
          undefined,
          'TraceExportService',
          '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        );
        return new base.OTLPExporterBase(delegate) as unknown as SpanExporter;
      }
      const http = await import('@opentelemetry/otlp-exporter-base/node-http');
      const delegate = http.createOtlpHttpExportDelegate(
        http.convertLegacyHttpOptions(config, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }),
        serializer,
        'otlp_http_span_exporter',
        transformer.TraceExporterMetricsHelper,
        undefined,
      );
      return new base.OTLPExporterBase(delegate) as unknown as SpanExporter;
    }));
  return {
    export: (spans, done) => {
      setImmediate(() =>
        load().then(
          (e) => e.export(spans, done),
          (error: Error) => done({ code: ExportResultCode.FAILED, error }),
        ),
      );
    },
    shutdown: () => (real ? real.then((e) => e.shutdown(), () => undefined) : Promise.resolve()),
  };
}

function isEncodable(s: FinishedSpanRecord): boolean {
  return typeof (s as Partial<EncodableSpan>).eachAttribute === 'function' && typeof (s as Partial<EncodableSpan>).startMs === 'number';
}

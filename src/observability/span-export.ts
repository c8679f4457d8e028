import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Counter, type Registry } from 'prom-client';
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

/** Where finished spans go: the SDK's BatchSpanProcessor in front of an OTLP exporter, or a test's. */
export interface SpanSink {
  onEnd(span: ReadableSpan): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * The export side of tracing: the OpenTelemetry SDK's BatchSpanProcessor
 * (bounded queue, batches, one export in flight, its own timer) feeding the
 * SDK's OTLP exporter (HTTP/protobuf or gRPC). Nothing here runs on a
 * request's path but `onEnd`, which only queues: a slow or dead collector
 * fills the queue, and what does not fit is dropped and counted in
 * `outrigger_trace_spans_dropped_total{reason}` (queue_full, export_failed).
 *
 * The processor keeps its drop count private; the queue length is known
 * from outside exactly, though: spans handed to `onEnd` minus spans handed
 * to the exporter. So the processor is fed only while that is below its
 * limit, and the rest is counted here.
 */
export class SpanExport implements SpanSink {
  private queued = 0;
  private readonly processor: BatchSpanProcessor;
  private readonly dropped: Counter<'reason'>;
  private readonly exported: Counter;

  constructor(
    registry: Registry,
    private readonly o: ExportOptions,
    exporter: SpanExporter = createExporter(o),
  ) {
    this.dropped = new Counter({
      name: 'outrigger_trace_spans_dropped_total',
      help: 'Finished spans not exported: the export queue was full, or the collector refused or could not be reached',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.exported = new Counter({ name: 'outrigger_trace_spans_exported_total', help: 'Spans the collector accepted', registers: [registry] });
    this.processor = new BatchSpanProcessor(this.counting(exporter), {
      maxQueueSize: o.maxQueueSize,
      maxExportBatchSize: o.maxExportBatchSize,
      scheduledDelayMillis: o.scheduledDelayMs,
      exportTimeoutMillis: o.exportTimeoutMs,
    });
  }

  onEnd(span: ReadableSpan): void {
    if (this.queued >= this.o.maxQueueSize) {
      this.dropped.inc({ reason: 'queue_full' });
      return;
    }
    this.queued++;
    this.processor.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.processor.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.processor.shutdown();
  }

  private counting(inner: SpanExporter): SpanExporter {
    return {
      export: (spans, done) => {
        this.queued -= spans.length;
        inner.export(spans, (r: ExportResult) => {
          if (r.code === ExportResultCode.SUCCESS) this.exported.inc(spans.length);
          else this.dropped.inc({ reason: 'export_failed' }, spans.length);
          done(r);
        });
      },
      shutdown: () => inner.shutdown(),
      forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
    };
  }
}

/**
 * The SDK's OTLP exporter, imported on first use: its packages (protobufjs,
 * @grpc/grpc-js for the gRPC one) are megabytes a sidecar with tracing off
 * never loads — this module is part of its import graph either way. A batch
 * that finds the import failed is reported failed (counted as a drop).
 */
function createExporter(o: ExportOptions): SpanExporter {
  const config = { url: o.url, timeoutMillis: o.exportTimeoutMs };
  let real: Promise<SpanExporter> | undefined;
  const load = (): Promise<SpanExporter> =>
    (real ??=
      o.protocol === 'grpc'
        ? import('@opentelemetry/exporter-trace-otlp-grpc').then((m) => new m.OTLPTraceExporter(config))
        : import('@opentelemetry/exporter-trace-otlp-proto').then((m) => new m.OTLPTraceExporter(config)));
  return {
    export: (spans, done) => {
      load().then(
        (e) => e.export(spans, done),
        (error: Error) => done({ code: ExportResultCode.FAILED, error }),
      );
    },
    shutdown: () => (real ? real.then((e) => e.shutdown(), () => undefined) : Promise.resolve()),
    forceFlush: () => (real ? real.then((e) => e.forceFlush?.(), () => undefined) : Promise.resolve()),
  };
}

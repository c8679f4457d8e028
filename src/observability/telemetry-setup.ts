import { performance } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import type { ExchangeTelemetry, MetricsCompat } from './exchange-telemetry.js';
import { IstioMetrics } from './istio-metrics.js';
import { LiveStats, type LiveOptions } from './live-stats.js';
import { TapHub } from './tap.js';
import { UNKNOWN_WORKLOAD, type WorkloadIdentity } from './workload.js';
import { systemRandom, type Random } from '../core/random.js';
import type { TracingSettings } from './trace-settings.js';
import type { SpanSink } from './span-export.js';

/** The injected outbound listener (injector/inbound-config.ts OUTBOUND.listener): its traffic is reported as `source`. */
export const DEFAULT_OUTBOUND_LISTENERS: ReadonlySet<string> = new Set(['outbound']);

export interface TelemetryOptions {
  readonly clock: Clock;
  readonly registry: Registry;
  readonly compat?: MetricsCompat;
  readonly workload?: WorkloadIdentity;
  readonly outboundListeners?: ReadonlySet<string>;
  readonly seriesBudget?: number;
  readonly live?: LiveOptions;
  /** The sidecar's own SPIFFE ID, once it holds a workload certificate (principal labels). */
  readonly selfPrincipal?: () => string | undefined;
  /** OpenTelemetry tracing (resolveTracing: flags and OTEL_* variables); undefined: off, and free. */
  readonly tracing?: TracingSettings;
  readonly random?: Random;
  /** Spans go here instead of the OTLP exporter (tests, benchmarks). */
  readonly spanSink?: SpanSink;
}

/**
 * Builds the exchange telemetry of one sidecar and the process metrics that
 * prom-client's default collectors lack: those give CPU, memory, heap (and
 * per space), event-loop lag with percentiles, GC pause histograms, open
 * handles and file descriptors; event-loop utilization is added here.
 */
export async function buildTelemetry(o: TelemetryOptions, prefix = 'outrigger_'): Promise<ExchangeTelemetry> {
  // Both by default (as issue 18 asks): Istio's series are resolved once per
  // label set (series-metrics.ts), ~0.4 µs per request for all four.
  const compat = o.compat ?? 'both';
  registerEventLoopUtilization(o.registry, prefix);
  // OpenTelemetry (api, SDK, resources, B3) is imported only when tracing is on: ~10 MiB a sidecar that does not trace never carries.
  const tracer =
    o.tracing === undefined
      ? undefined
      : (await import('./trace-config.js')).buildTracer(o.tracing, { clock: o.clock, random: o.random ?? systemRandom(), registry: o.registry, workload: o.workload, sink: o.spanSink });
  return {
    clock: o.clock,
    outriggerRequestMetric: compat !== 'istio',
    istio:
      compat === 'outrigger'
        ? undefined
        : new IstioMetrics(o.registry, {
            self: o.workload ?? UNKNOWN_WORKLOAD,
            outboundListeners: o.outboundListeners ?? DEFAULT_OUTBOUND_LISTENERS,
            seriesBudget: o.seriesBudget,
            selfPrincipal: o.selfPrincipal,
          }),
    live: new LiveStats(o.clock, o.live),
    tap: new TapHub(),
    tracer,
  };
}

/** The share of time the event loop was busy since the previous scrape (0–1). */
function registerEventLoopUtilization(registry: Registry, prefix: string): void {
  let last = performance.eventLoopUtilization();
  new Gauge({
    name: `${prefix}nodejs_eventloop_utilization`,
    help: 'Event-loop utilization between two scrapes (0-1)',
    registers: [registry],
    collect() {
      const now = performance.eventLoopUtilization();
      this.set(performance.eventLoopUtilization(now, last).utilization);
      last = now;
    },
  });
}

import type { Clock } from '../core/clock.js';
import type { IstioMetrics } from './istio-metrics.js';
import type { LiveStats } from './live-stats.js';
import type { TapEvent, TapHub } from './tap.js';
import type { ExchangeRecord } from './exchange-record.js';
import type { Tracer } from './tracer.js';

/** Which request metrics the sidecar exports (`outrigger sidecar --metrics-compat`). */
export type MetricsCompat = 'istio' | 'outrigger' | 'both';
export const METRICS_COMPAT: readonly MetricsCompat[] = ['istio', 'outrigger', 'both'];


/**
 * Everything a finished exchange reports besides the access log and our own
 * request metric: Istio's metrics, the live window, the tap. Built once by
 * the composition root; each part is optional.
 */
export interface ExchangeTelemetry {
  readonly clock: Clock;
  /** False with `--metrics-compat istio`: outrigger_request_duration_seconds is not observed. */
  readonly outriggerRequestMetric: boolean;
  readonly istio: IstioMetrics | undefined;
  readonly live: LiveStats | undefined;
  readonly tap: TapHub | undefined;
  /** OpenTelemetry tracing (tracing/), when an OTLP endpoint is configured. */
  readonly tracer: Tracer | undefined;
}

export function reportExchange(t: ExchangeTelemetry, listener: string, ex: ExchangeRecord): void {
  t.istio?.observeRequest({
    listener,
    authority: ex.authority,
    cluster: ex.cluster,
    protocol: ex.protocol,
    status: ex.status,
    grpcStatus: ex.grpc_status,
    flags: ex.flags,
    durationMs: ex.duration_ms,
    bytesIn: ex.bytes_in,
    bytesOut: ex.bytes_out,
    sourcePrincipal: ex.source_principal,
    upstreamPrincipal: ex.upstream_principal,
  });
  t.live?.record(ex);
  const tap = t.tap;
  if (tap !== undefined && tap.active) tap.publish(ex.route, ex.path, () => tapEvent(t.clock, listener, ex));
}

function tapEvent(clock: Clock, listener: string, ex: ExchangeRecord): TapEvent {
  return {
    ts: clock.nowMs(),
    listener,
    method: ex.method,
    authority: ex.authority,
    path: ex.path,
    protocol: ex.protocol,
    status: ex.status,
    grpc_status: ex.grpc_status,
    duration_ms: ex.duration_ms,
    route: ex.route,
    cluster: ex.cluster,
    upstream: ex.upstream,
    flags: ex.flags,
    request_id: ex.request_id,
    trace_id: ex.trace_id,
    headers: ex.headers,
  };
}

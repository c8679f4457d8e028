import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';
import type { ProxyMetrics } from '../../observability/proxy-metrics.js';
import { reportExchange, type ExchangeTelemetry } from '../../observability/exchange-telemetry.js';
import { writeAccess } from '../../observability/access-line.js';
import type { ExchangeTrace } from '../../observability/tracer.js';

/** Where an exchange's record goes (ProxyContext provides these). */
export interface ExchangeSinks {
  readonly clock: Clock;
  readonly metrics: ProxyMetrics;
  readonly accessLog: Logger;
  readonly telemetry?: ExchangeTelemetry;
}

/** The listener settings that shape the record (ListenerSettings provides these). */
export interface ExchangeLogSettings {
  readonly name: string;
  readonly accessLog: boolean;
  readonly logHeaders: readonly string[];
  readonly sensitiveHeaders: ReadonlySet<string>;
}

type InHeaders = Record<string, string | string[] | undefined>;

/**
 * The record of one request/response exchange, filled in as it proceeds and
 * written once at the end as the access-log line and the request metric.
 * Field names are the access-log keys (snake_case, units in names).
 */
export class Exchange {
  method = '';
  authority = '';
  path = '';
  protocol: string;
  status = 0;
  grpc_status: string | undefined = undefined;
  duration_ms = 0;
  bytes_in = 0;
  bytes_out = 0;
  upstream: string | undefined = undefined;
  route = '';
  cluster = '';
  request_id: string | undefined = undefined;
  flags: string | undefined = undefined;
  /**
   * Flags of what the route injected (DI: fault delay), kept apart from
   * `flags` (which the exchange's writers overwrite) and put before them
   * when the record is written: `DI,DC`, `DI,UT`.
   */
  injectedFlags: string | undefined = undefined;
  /** Upstream attempts made, when more than one (retries, hedges, refused-stream replays). */
  attempts: number | undefined = undefined;
  headers: Record<string, string> | undefined = undefined;
  /** The mesh mTLS peer's SPIFFE ID (docs/security.md), when the connection had one. */
  source_principal: string | undefined = undefined;
  /** The mesh mTLS upstream's verified SPIFFE ID (clusters with `tls.mode: TLS_MODE_MESH`). */
  upstream_principal: string | undefined = undefined;
  /** The exchange's trace (set by the pipeline when tracing is on): attempts inject it, finish() ends its server span. */
  trace: ExchangeTrace | undefined = undefined;
  private readonly startMs: number;
  private done = false;

  constructor(
    private readonly ctx: ExchangeSinks,
    private readonly listener: ExchangeLogSettings,
    protocol: string,
  ) {
    this.protocol = protocol;
    this.startMs = ctx.clock.monotonicMs();
    ctx.metrics.activeFor(listener.name).inc();
  }

  /** When the exchange started, wall clock (derived on demand, so exchanges that never ask pay nothing). */
  startWallMs(): number {
    const c = this.ctx.clock;
    return c.nowMs() - (c.monotonicMs() - this.startMs);
  }

  get trace_id(): string | undefined {
    return this.trace?.traceId;
  }

  /** The server span's id (unsampled: the parent's id that was passed on). */
  get span_id(): string | undefined {
    return this.trace?.spanId;
  }

  /** Copies the configured request headers into the log line, redacting sensitive ones. */
  captureHeaders(h: InHeaders): void {
    const names = this.listener.logHeaders;
    if (names.length === 0) return;
    const out: Record<string, string> = {};
    for (const n of names) {
      const v = h[n];
      if (v === undefined) continue;
      out[n] = this.listener.sensitiveHeaders.has(n) ? '[redacted]' : Array.isArray(v) ? v.join(', ') : v;
    }
    this.headers = out;
  }

  /** Writes the access-log line and metrics exactly once. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    const ctx = this.ctx;
    const l = this.listener;
    const endMs = ctx.clock.monotonicMs();
    this.duration_ms = Math.round((endMs - this.startMs) * 1000) / 1000;
    // The local reply's own flag counts local replies; the record shows every flag.
    const localFlag = this.flags;
    if (this.injectedFlags !== undefined) this.flags = localFlag === undefined ? this.injectedFlags : `${this.injectedFlags},${localFlag}`;
    ctx.metrics.activeFor(l.name).dec();
    // Observability: Istio metrics, live window, tap (exchange-telemetry.ts); --metrics-compat istio drops our histogram.
    const t = ctx.telemetry;
    if (t !== undefined) {
      reportExchange(t, l.name, this);
      const tr = this.trace;
      if (tr !== undefined) tr.tracer.exchangeEnded(tr, this, this.startMs, endMs);
    }
    if (t === undefined || t.outriggerRequestMetric) {
      ctx.metrics.observeRequest(l.name, this.route, this.cluster, this.status, this.grpc_status ?? '', this.protocol, this.duration_ms / 1000);
    }
    if (localFlag !== undefined) ctx.metrics.localReplies.inc({ listener: l.name, flag: localFlag });
    if (l.accessLog) writeAccess(ctx.accessLog, l.name, this, () => this.toLogObject());
  }

  private toLogObject(): Record<string, unknown> {
    return {
      listener: this.listener.name,
      method: this.method,
      authority: this.authority,
      path: this.path,
      protocol: this.protocol,
      status: this.status,
      grpc_status: this.grpc_status,
      duration_ms: this.duration_ms,
      bytes_in: this.bytes_in,
      bytes_out: this.bytes_out,
      upstream: this.upstream,
      route: this.route,
      cluster: this.cluster,
      request_id: this.request_id,
      flags: this.flags,
      attempts: this.attempts,
      headers: this.headers,
      source_principal: this.source_principal,
      upstream_principal: this.upstream_principal,
      trace_id: this.trace?.traceId,
      span_id: this.trace?.spanId,
    };
  }
}

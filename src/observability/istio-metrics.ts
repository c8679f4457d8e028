import { Counter, type Registry } from 'prom-client';
import { SeriesCounter, SeriesHistogram, type CounterSeries, type HistogramSeries } from './series-metrics.js';
import { UNKNOWN, type WorkloadIdentity } from './workload.js';

/** Istio's label names, in Istio's order (docs/observability.md lists each one's source). */
export const ISTIO_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const;
type IstioLabel = (typeof ISTIO_LABELS)[number];
/** Istio's TCP metrics carry the same labels minus the HTTP ones. */
const TCP_LABELS = ISTIO_LABELS.filter((l) => l !== 'response_code' && l !== 'grpc_response_status');

/**
 * Envoy's default histogram buckets, which Istio's standard metrics use for
 * durations (ms) and, unchanged, for body sizes (bytes), so dashboards built
 * for Istio read ours bucket for bucket.
 */
export const ISTIO_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

/** The default label-cardinality budget: distinct label sets per metric family (docs/observability.md). */
export const DEFAULT_SERIES_BUDGET = 2000;

/** What one finished request reports (filled from the Exchange). */
export interface IstioRequest {
  readonly listener: string;
  readonly authority: string;
  readonly cluster: string;
  readonly protocol: string;
  readonly status: number;
  readonly grpcStatus: string | undefined;
  readonly flags: string | undefined;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Inbound: the downstream's SPIFFE ID, verified by mesh mTLS (undefined: plaintext). */
  readonly sourcePrincipal?: string | undefined;
  /** Outbound: the upstream's SPIFFE ID, verified by mesh mTLS (undefined: plaintext). */
  readonly upstreamPrincipal?: string | undefined;
}

export interface IstioOptions {
  readonly self: WorkloadIdentity;
  /** Listeners whose traffic this pod sends (reporter `source`); all others receive it (reporter `destination`). */
  readonly outboundListeners: ReadonlySet<string>;
  readonly seriesBudget?: number;
  /** This sidecar's own SPIFFE ID (its workload certificate), the other principal of an mTLS exchange. */
  readonly selfPrincipal?: () => string | undefined;
}

interface RequestChildren {
  readonly count: CounterSeries;
  readonly duration: HistogramSeries;
  readonly reqBytes: HistogramSeries;
  readonly resBytes: HistogramSeries;
}

interface TcpChildren {
  readonly opened: CounterSeries;
  readonly closed: CounterSeries;
  readonly sent: CounterSeries;
  readonly received: CounterSeries;
}

/** One open TCP connection's report, closed once. */
export interface TcpReport {
  close(bytesReceived: number, bytesSent: number, flags: string | undefined): void;
}

/**
 * Istio's standard metrics. Label values that a client controls (the
 * destination service comes from the authority) are bounded by a series
 * budget: past it, a new label set folds its service labels to `unknown`
 * (one extra series) and `outrigger_metrics_series_folded_total` counts it.
 * Series are resolved once per label tuple (series-metrics.ts): an observe
 * then touches a few numbers, where prom-client's children re-hash the 19
 * labels of each of the four metrics on every request.
 */
export class IstioMetrics {
  readonly requests: SeriesCounter;
  readonly duration: SeriesHistogram;
  readonly requestBytes: SeriesHistogram;
  readonly responseBytes: SeriesHistogram;
  readonly tcpSent: SeriesCounter;
  readonly tcpReceived: SeriesCounter;
  readonly tcpOpened: SeriesCounter;
  readonly tcpClosed: SeriesCounter;
  readonly folded: Counter<'metric'>;
  private readonly budget: number;
  private readonly requestChildren = new Map<string, RequestChildren>();
  private readonly tcpChildren = new Map<string, TcpChildren>();

  constructor(
    registry: Registry,
    private readonly opts: IstioOptions,
  ) {
    const registers = [registry];
    const labelNames = ISTIO_LABELS;
    const tcpLabelNames = TCP_LABELS;
    this.budget = opts.seriesBudget ?? DEFAULT_SERIES_BUDGET;
    this.requests = new SeriesCounter('istio_requests_total', 'Requests handled (Istio standard metric)', labelNames, registry);
    this.duration = new SeriesHistogram('istio_request_duration_milliseconds', 'Request duration in ms (Istio standard metric)', labelNames, ISTIO_BUCKETS, registry);
    this.requestBytes = new SeriesHistogram('istio_request_bytes', 'Request body sizes (Istio standard metric)', labelNames, ISTIO_BUCKETS, registry);
    this.responseBytes = new SeriesHistogram('istio_response_bytes', 'Response body sizes (Istio standard metric)', labelNames, ISTIO_BUCKETS, registry);
    this.tcpSent = new SeriesCounter('istio_tcp_sent_bytes_total', 'Bytes sent to the downstream on TCP connections (Istio standard metric; added at close)', tcpLabelNames, registry);
    this.tcpReceived = new SeriesCounter('istio_tcp_received_bytes_total', 'Bytes received from the downstream on TCP connections (Istio standard metric; added at close)', tcpLabelNames, registry);
    this.tcpOpened = new SeriesCounter('istio_tcp_connections_opened_total', 'TCP connections opened (Istio standard metric)', tcpLabelNames, registry);
    this.tcpClosed = new SeriesCounter('istio_tcp_connections_closed_total', 'TCP connections closed (Istio standard metric)', tcpLabelNames, registry);
    this.folded = new Counter({
      name: 'outrigger_metrics_series_folded_total',
      help: 'Observations past the series budget whose service labels were folded to "unknown"',
      labelNames: ['metric'],
      registers,
    });
  }

  observeRequest(r: IstioRequest): void {
    const grpc = r.grpcStatus !== undefined || r.protocol === 'grpc';
    const service = serviceOf(r.authority, r.cluster);
    // The peer's principal: the only one that varies (ours is fixed); set only on mesh mTLS exchanges.
    const peer = r.sourcePrincipal ?? r.upstreamPrincipal;
    const key = `${r.listener}\u0000${service}\u0000${grpc ? 1 : 0}\u0000${r.status}\u0000${r.grpcStatus ?? ''}\u0000${r.flags ?? ''}\u0000${peer ?? ''}`;
    let c = this.requestChildren.get(key);
    if (!c) {
      c = this.requestChildrenFor(key, r, grpc, service, peer);
    }
    c.count.inc();
    c.duration.observe(r.durationMs);
    c.reqBytes.observe(r.bytesIn);
    c.resBytes.observe(r.bytesOut);
  }

  /** Counts an opened TCP connection now; the returned report counts bytes and the close once. */
  tcpOpen(listener: string, cluster: string): TcpReport {
    const service = cluster || UNKNOWN;
    const opened = this.tcpChildrenFor(listener, service, undefined);
    opened.opened.inc();
    let done = false;
    return {
      close: (received, sent, flags) => {
        if (done) return;
        done = true;
        const c = flags === undefined ? opened : this.tcpChildrenFor(listener, service, flags);
        c.closed.inc();
        if (received > 0) c.received.inc(received);
        if (sent > 0) c.sent.inc(sent);
      },
    };
  }

  private requestChildrenFor(key: string, r: IstioRequest, grpc: boolean, service: string, peer: string | undefined): RequestChildren {
    let c: RequestChildren | undefined;
    if (this.requestChildren.size >= this.budget) {
      // Over budget: fold the client-controlled labels; the folded series is shared.
      this.folded.inc({ metric: 'istio_requests_total' });
      const foldedKey = `${r.listener}\u0000\u0001\u0000${grpc ? 1 : 0}\u0000${r.status}\u0000${r.grpcStatus ?? ''}\u0000${r.flags ?? ''}\u0000${peer ?? ''}`;
      c = this.requestChildren.get(foldedKey);
      if (c) return c;
      key = foldedKey;
      service = UNKNOWN;
    }
    const l = this.labels(r.listener, service, grpc ? 'grpc' : 'http', r.flags, peer);
    l.push(String(r.status), r.grpcStatus ?? '');
    // Values in labelNames order: put the HTTP labels where Istio has them.
    const values = [...l.slice(0, 15), l[17]!, l[18]!, l[15]!, l[16]!];
    c = {
      count: this.requests.series(values),
      duration: this.duration.series(values),
      reqBytes: this.requestBytes.series(values),
      resBytes: this.responseBytes.series(values),
    };
    this.requestChildren.set(key, c);
    return c;
  }

  private tcpChildrenFor(listener: string, service: string, flags: string | undefined): TcpChildren {
    let key = `${listener}\u0000${service}\u0000${flags ?? ''}`;
    let c = this.tcpChildren.get(key);
    if (c) return c;
    if (this.tcpChildren.size >= this.budget) {
      this.folded.inc({ metric: 'istio_tcp_connections_opened_total' });
      key = `${listener}\u0000\u0001\u0000${flags ?? ''}`;
      c = this.tcpChildren.get(key);
      if (c) return c;
      service = UNKNOWN;
    }
    const v = this.labels(listener, service, 'tcp', flags);
    c = { opened: this.tcpOpened.series(v), closed: this.tcpClosed.series(v), sent: this.tcpSent.series(v), received: this.tcpReceived.series(v) };
    this.tcpChildren.set(key, c);
    return c;
  }

  /** The label values shared by HTTP and TCP metrics, in TCP_LABELS order (17 values). */
  private labels(listener: string, service: string, protocol: string, flags: string | undefined, peerPrincipal?: string): string[] {
    const self = this.opts.self;
    const source = this.opts.outboundListeners.has(listener);
    // Principals exist only on mesh mTLS exchanges: the peer's verified SPIFFE ID and our own certificate's.
    const mtls = peerPrincipal !== undefined;
    const mine = mtls ? (this.opts.selfPrincipal?.() ?? UNKNOWN) : UNKNOWN;
    const peer = [UNKNOWN, UNKNOWN, peerPrincipal ?? UNKNOWN, UNKNOWN, UNKNOWN];
    const me = [self.workload, self.namespace, mine, self.app, self.version];
    const [src, dst] = source ? [me, peer] : [peer, me];
    const { name, namespace } = serviceParts(service, source ? UNKNOWN : self.namespace);
    return [
      source ? 'source' : 'destination',
      ...src!,
      ...dst!,
      service,
      name,
      namespace,
      protocol,
      flags ?? '-',
      // Istio: `mutual_tls` / `none` as the destination saw it; the client side knows it only when it made mTLS itself.
      mtls ? 'mutual_tls' : source ? UNKNOWN : 'none',
    ];
  }
}

/** The destination service: the authority's host (port dropped), else the cluster, else `unknown`. */
export function serviceOf(authority: string, cluster: string): string {
  if (authority) {
    let host = authority;
    if (host.charCodeAt(0) === 91 /* [ */) {
      const e = host.indexOf(']');
      host = e > 0 ? host.slice(0, e + 1) : host;
    } else {
      const c = host.lastIndexOf(':');
      if (c > 0 && host.indexOf(':') === c) host = host.slice(0, c);
    }
    if (host) return host.toLowerCase();
  }
  return cluster || UNKNOWN;
}

/** `name.ns.svc…` → name and namespace; a bare name belongs to `defaultNamespace`. */
export function serviceParts(service: string, defaultNamespace: string): { name: string; namespace: string } {
  if (service === UNKNOWN) return { name: UNKNOWN, namespace: UNKNOWN };
  const parts = service.split('.');
  if (parts.length === 1) return { name: service, namespace: defaultNamespace };
  if (/^\d+$/.test(parts[parts.length - 1]!) || service.startsWith('[')) return { name: service, namespace: UNKNOWN }; // an IP
  if (parts.length >= 3 && parts[2] === 'svc') return { name: parts[0]!, namespace: parts[1]! };
  if (parts.length === 2) return { name: parts[0]!, namespace: parts[1]! };
  return { name: service, namespace: UNKNOWN };
}

import { flagOf } from '../../core/errors.js';
import type { Exchange } from '../http/exchange.js';
import type { ClusterRuntime } from './cluster.js';
import type { EndpointAddress } from './endpoint.js';
import type { Attempt as StatsAttempt, AttemptOutcome } from './endpoint-stats.js';
import type { AttemptSpan } from '../../observability/tracer.js';

/**
 * Why an attempt was sent: the request's first, a retry after a failure
 * (retryPolicy), a hedge beside earlier ones (hedgePolicy), or the transparent
 * replay of a stream the upstream refused without processing it.
 */
export type AttemptKind = 'first' | 'retry' | 'hedge' | 'replay';

/**
 * How an attempt ended, as `outrigger_upstream_requests_total{outcome}`
 * counts it (bounded: these eight values).
 */
export type AttemptResult = 'success' | 'client_error' | 'server_error' | 'connect_failure' | 'reset' | 'timeout' | 'cancelled' | 'refused';

/** The counters an attempt feeds (ProxyMetrics implements them). */
export interface UpstreamMetrics {
  upstreamAttempt(cluster: string, result: AttemptResult): void;
  upstreamRetry(cluster: string, kind: Exclude<AttemptKind, 'first'>): void;
  upstreamOverflow(cluster: string, limit: string): void;
}

/**
 * One upstream attempt: one request or stream sent to one endpoint.
 *
 * This is THE seam where an attempt starts and ends. Every upstream request
 * of an HTTP exchange — pass-through (forward/relay.ts), transcoded gRPC calls
 * (transcode/grpc-call.ts), spliced WebSockets — is begun by `startAttempt`
 * right before its request head is written, with the headers about to go out
 * (still mutable, e.g. for a trace context), and finished by exactly one
 * `end`, with how it ended. Retries, hedges and replays are further attempts
 * through the same two calls (upstream/retry/attempt-runner.ts decides them).
 *
 * What it keeps: the endpoint's active-request count and latency sample
 * (balancers, outlier detection) from start to end, the cluster's pending
 * count while the connection is being established (maxPendingRequests), and
 * the per-attempt outcome counter.
 */
export class UpstreamAttempt {
  private readonly stats: StatsAttempt;
  private pending = false;
  private ended = false;
  private retrySlot = false;
  /** Its client span while it runs, when the exchange's trace is sampled. */
  span: AttemptSpan | undefined = undefined;

  constructor(
    readonly cluster: ClusterRuntime,
    readonly endpoint: EndpointAddress,
    /** 0 for the first attempt of the request, then 1, 2… in start order. */
    readonly index: number,
    readonly kind: AttemptKind,
    private readonly metrics: UpstreamMetrics,
  ) {
    this.stats = cluster.beginAttempt(endpoint.key);
  }

  /** A retry or hedge: it holds one of the cluster's retry slots until it ends (maxRetries, retry budget). */
  holdsRetrySlot(): void {
    this.retrySlot = true;
  }

  /** The attempt waits for its connection (an HTTP/2 session or HTTP/1.1 socket still connecting). */
  waitingForConnection(): void {
    if (this.pending || this.ended) return;
    this.pending = true;
    this.cluster.pendingTotal++;
  }

  /** Its connection is up (or failed): no longer pending. */
  connected(): void {
    if (!this.pending) return;
    this.pending = false;
    this.cluster.pendingTotal--;
  }

  /** Ends the attempt; only the first call counts. `result` defaults to what `outcome` says. */
  end(outcome: AttemptOutcome, result: AttemptResult = resultOf(outcome)): void {
    if (this.ended) return;
    this.ended = true;
    this.connected();
    if (this.retrySlot) this.cluster.releaseRetry();
    this.stats.end(outcome);
    this.metrics.upstreamAttempt(this.cluster.name, result);
    const s = this.span;
    if (s !== undefined) {
      const ep = this.endpoint;
      s.trace.tracer.attemptEnded(s, {
        cluster: this.cluster.name,
        endpointHost: ep.host,
        endpointPort: ep.port,
        index: this.index,
        kind: this.kind,
        status: outcome.status,
        grpcStatus: outcome.grpcStatus,
        flag: outcome.flag,
        result,
      });
    }
  }

  get done(): boolean {
    return this.ended;
  }
}

/**
 * Starts an attempt of `cluster` on `endpoint`. `headers` are the request
 * headers that will be sent upstream for this attempt (their own object per
 * attempt when attempts differ), mutable until the caller writes them.
 */
export function startAttempt(
  metrics: UpstreamMetrics,
  cluster: ClusterRuntime,
  endpoint: EndpointAddress,
  index: number,
  kind: AttemptKind,
  headers: Record<string, unknown>,
  /** The exchange the attempt serves (absent for calls of our own, e.g. reflection): its record, request id, trace parent. */
  exchange: Exchange | undefined,
): UpstreamAttempt {
  const a = new UpstreamAttempt(cluster, endpoint, index, kind, metrics);
  // Tracing: this attempt's client span (a sibling of the request's other attempts) is the upstream's parent.
  const t = exchange?.trace;
  if (t !== undefined) a.span = t.tracer.attemptStarted(t, headers, exchange!.method, exchange!.path);
  return a;
}

const FLAG_UF = flagOf('upstream_connect_failure');
const FLAG_UR = flagOf('upstream_reset');
const FLAG_UT = flagOf('upstream_timeout');
const FLAG_DE = flagOf('deadline_exceeded');
const FLAG_DC = flagOf('downstream_reset');

/** gRPC statuses counted as the server's failure (as outlier detection's 5xx class). */
const GRPC_SERVER_ERRORS = new Set(['2', '4', '13', '14', '15']);

/** The outcome label of an attempt's end (docs/resilience.md#metrics). */
export function resultOf(o: AttemptOutcome): AttemptResult {
  if (o.abandoned === true) return 'cancelled';
  const f = o.flag;
  if (f !== undefined) {
    if (f === FLAG_UF) return 'connect_failure';
    if (f === FLAG_UR) return 'reset';
    if (f === FLAG_UT || f === FLAG_DE) return 'timeout';
    if (f === FLAG_DC) return 'cancelled';
  }
  const g = o.grpcStatus;
  if (g !== undefined && g !== '0') return GRPC_SERVER_ERRORS.has(g) ? 'server_error' : 'client_error';
  if (o.status >= 500) return 'server_error';
  if (o.status >= 400) return 'client_error';
  if (o.status === 0) return 'reset';
  return 'success';
}

import type { DescMethod } from '@bufbuild/protobuf';
import { MethodOptions_IdempotencyLevel } from '@bufbuild/protobuf/wkt';
import type { RouteAction } from '../../../gen/outrigger/config/v1/route_pb.js';
import { RetryHostPredicate } from '../../../gen/outrigger/config/v1/route_pb.js';
import { durationMs } from '../../../core/duration.js';
import { grpcStatusFromHttp } from '../../../core/errors.js';
import {
  DEFAULT_BASE_INTERVAL_MS,
  DEFAULT_RETRY_ON,
  MAX_BUFFER_LIMIT_BYTES,
  MAX_HEDGE_ATTEMPTS,
  MAX_NUM_RETRIES,
  RETRY_ON,
  parseGrpcStatus,
  parseRetryOn,
} from '../../../core/retry-vocabulary.js';

/** `route.retryPolicy`, compiled once per config version. */
export interface RetryPlan {
  /** RETRY_ON bits (core/retry-vocabulary.ts). */
  readonly retryOn: number;
  readonly numRetries: number;
  /** Bound of one attempt until its response head; 0: none. */
  readonly perTryTimeoutMs: number;
  readonly baseIntervalMs: number;
  readonly maxIntervalMs: number;
  readonly retriableStatusCodes: ReadonlySet<number>;
  /** Retries avoid endpoints earlier attempts went to (when the cluster has others). */
  readonly previousHosts: boolean;
  /** Retries in flight ≤ max(minConcurrency, percent % of the cluster's requests in flight); undefined: circuitBreakers.maxRetries. */
  readonly budget: RetryBudgetPlan | undefined;
}

export interface RetryBudgetPlan {
  readonly percent: number;
  readonly minConcurrency: number;
}

/** `route.hedgePolicy` (gRFC A6), compiled. */
export interface HedgePlan {
  readonly maxAttempts: number;
  readonly delayMs: number;
  /** gRPC status codes of answers that are not final. */
  readonly nonFatal: ReadonlySet<number>;
}

/** How many attempts a request may make, and how much of its body is kept to replay them. */
export interface RunnerPlan {
  /** Retries after failures (route.retryPolicy); not with `hedge`. */
  readonly retry: RetryPlan | undefined;
  /** Hedged attempts (route.hedgePolicy) for a request safe to repeat. */
  readonly hedge: HedgePlan | undefined;
  /** The route's retry budget (retries and hedges); undefined: circuitBreakers.maxRetries. */
  readonly budget: RetryBudgetPlan | undefined;
  /** Request body bytes kept for replays (perRequestBufferLimitBytes); past it no further attempt is made. */
  readonly bufferLimitBytes: number;
}

/**
 * What a route asks of its upstream attempts beyond one try, as ready-made
 * plans (no allocation per request). Present on a compiled route only when
 * it has a retry or hedge policy: a route without either takes the
 * single-attempt path and pays nothing for this.
 */
export interface RouteRetries {
  /** retryPolicy's plan, for requests that are not hedged. */
  readonly retry: RunnerPlan | undefined;
  /** hedgePolicy's plan, for requests safe to repeat. */
  readonly hedge: RunnerPlan | undefined;
  /** `idempotent: true`: every request of the route is safe to repeat. */
  readonly idempotent: boolean;
}

/**
 * The plan of one request: hedging when the route has a hedge policy and
 * the request is safe to repeat (the route says so, or `safeToRepeat()`:
 * GET/HEAD, a method descriptor's idempotency level), else the retry policy.
 */
export function planFor(r: RouteRetries | undefined, safeToRepeat: () => boolean): RunnerPlan | undefined {
  if (r === undefined) return undefined;
  if (r.hedge !== undefined && (r.idempotent || safeToRepeat())) return r.hedge;
  return r.retry;
}

export const DEFAULT_NUM_RETRIES = 1;
export const DEFAULT_BUFFER_LIMIT_BYTES = 64 * 1024;
export const DEFAULT_BUDGET_PERCENT = 20;
export const DEFAULT_MIN_RETRY_CONCURRENCY = 3;

/** Compiles a route action's retry and hedge policies; undefined when it has neither (validated before). */
export function compileRouteRetries(a: RouteAction): RouteRetries | undefined {
  const r = a.retryPolicy;
  const h = a.hedgePolicy;
  if (!r && !h) return undefined;
  const bufferLimitBytes = Math.min(a.perRequestBufferLimitBytes ?? DEFAULT_BUFFER_LIMIT_BYTES, MAX_BUFFER_LIMIT_BYTES);
  const retry = r ? compileRetry(r) : undefined;
  const budget = retry?.budget;
  return Object.freeze({
    retry: retry ? Object.freeze({ retry, hedge: undefined, budget, bufferLimitBytes }) : undefined,
    hedge: h ? Object.freeze({ retry: undefined, hedge: compileHedge(h), budget, bufferLimitBytes }) : undefined,
    idempotent: a.idempotent,
  });
}

function compileRetry(r: NonNullable<RouteAction['retryPolicy']>): RetryPlan {
  let bits = 0;
  for (const entry of r.retryOn) bits |= parseRetryOn(entry).bits;
  if (r.retryOn.length === 0) for (const w of DEFAULT_RETRY_ON) bits |= RETRY_ON[w];
  const base = durationMs(r.retryBackOff?.baseInterval, DEFAULT_BASE_INTERVAL_MS) || DEFAULT_BASE_INTERVAL_MS;
  const max = Math.max(base, durationMs(r.retryBackOff?.maxInterval, 10 * base) || 10 * base);
  const b = r.retryBudget;
  return Object.freeze({
    retryOn: bits,
    numRetries: Math.min(r.numRetries ?? DEFAULT_NUM_RETRIES, MAX_NUM_RETRIES),
    perTryTimeoutMs: Math.max(0, durationMs(r.perTryTimeout, 0)),
    baseIntervalMs: base,
    maxIntervalMs: max,
    retriableStatusCodes: new Set(r.retriableStatusCodes),
    previousHosts: r.retryHostPredicate !== RetryHostPredicate.ANY,
    budget: b
      ? Object.freeze({ percent: b.budgetPercent ?? DEFAULT_BUDGET_PERCENT, minConcurrency: b.minRetryConcurrency ?? DEFAULT_MIN_RETRY_CONCURRENCY })
      : undefined,
  });
}

function compileHedge(h: NonNullable<RouteAction['hedgePolicy']>): HedgePlan {
  const nonFatal = new Set<number>();
  for (const s of h.nonFatalStatusCodes) {
    const c = parseGrpcStatus(s);
    if (c !== undefined) nonFatal.add(c);
  }
  return Object.freeze({
    maxAttempts: Math.max(1, Math.min(h.maxAttempts, MAX_HEDGE_ATTEMPTS)),
    delayMs: Math.max(0, durationMs(h.hedgingDelay, 0)),
    nonFatal,
  });
}

/** How an attempt failed without an answer to relay. */
export type AttemptFailure = 'connect_failure' | 'reset' | 'refused' | 'timeout';

/**
 * Whether `retryOn` covers an attempt that got no answer (Envoy's
 * wouldRetryFromReset): `5xx`, `gateway-error` and `reset` cover every such
 * failure, a per-try timeout included; `connect-failure` and
 * `refused-stream` their own; `deadline-exceeded` a gRPC call's per-try timeout.
 */
export function retriableFailure(p: RetryPlan, f: AttemptFailure, grpc: boolean): boolean {
  const b = p.retryOn;
  if ((b & (RETRY_ON['5xx'] | RETRY_ON['gateway-error'] | RETRY_ON.reset)) !== 0) return true;
  switch (f) {
    case 'connect_failure':
      return (b & RETRY_ON['connect-failure']) !== 0;
    case 'refused':
      return (b & RETRY_ON['refused-stream']) !== 0;
    case 'timeout':
      return grpc && (b & RETRY_ON['deadline-exceeded']) !== 0;
    default:
      return false;
  }
}

const GRPC_WORD: Readonly<Record<number, number>> = {
  1: RETRY_ON.cancelled,
  4: RETRY_ON['deadline-exceeded'],
  8: RETRY_ON['resource-exhausted'],
  13: RETRY_ON.internal,
  14: RETRY_ON.unavailable,
};

/**
 * Whether `retryOn` covers a response head: its HTTP status (5xx,
 * gateway-error, retriable-4xx = 409, retriable-status-codes) or the
 * grpc-status it carries (a trailers-only answer).
 */
export function retriableAnswer(p: RetryPlan, status: number, grpcStatus: number | undefined): boolean {
  const b = p.retryOn;
  if ((b & RETRY_ON['5xx']) !== 0 && status >= 500) return true;
  if ((b & RETRY_ON['gateway-error']) !== 0 && (status === 502 || status === 503 || status === 504)) return true;
  if ((b & RETRY_ON['retriable-4xx']) !== 0 && status === 409) return true;
  if ((b & RETRY_ON['retriable-status-codes']) !== 0 && p.retriableStatusCodes.has(status)) return true;
  if (grpcStatus !== undefined) {
    const w = GRPC_WORD[grpcStatus];
    if (w !== undefined && (b & w) !== 0) return true;
  }
  return false;
}

/**
 * Whether a hedged attempt's answer is not final (gRFC A6
 * nonFatalStatusCodes): its grpc-status, or for plain HTTP the gRPC status its
 * HTTP status maps to (PROTOCOLS.md b3); a success (below 400 without a
 * grpc-status) is always final.
 */
export function nonFatalAnswer(h: HedgePlan, status: number, grpcStatus: number | undefined): boolean {
  if (grpcStatus !== undefined) return h.nonFatal.has(grpcStatus);
  if (status < 400) return false;
  return h.nonFatal.has(grpcStatusFromHttp(status));
}

/**
 * Whether a request is safe to send more than once (hedging): a GET or HEAD
 * (not gRPC), or a method whose descriptor declares `idempotency_level`
 * NO_SIDE_EFFECTS or IDEMPOTENT (known when the route has descriptors).
 */
export function safeToRepeat(httpMethod: string, grpc: boolean, method: DescMethod | undefined): boolean {
  if (!grpc && (httpMethod === 'GET' || httpMethod === 'HEAD')) return true;
  const level = method?.idempotency;
  return level === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS || level === MethodOptions_IdempotencyLevel.IDEMPOTENT;
}

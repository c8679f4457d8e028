/**
 * The one table of local failures. Every reply the sidecar generates itself
 * (rather than relaying from an upstream) comes from a code here, so HTTP
 * status, gRPC status and the access-log flag never disagree.
 *
 * gRPC statuses for HTTP-ish failures follow the HTTP→gRPC table of
 * PROTOCOLS.md b3 (e.g. 404 → UNIMPLEMENTED, 503 → UNAVAILABLE) except where
 * a more precise gRPC status exists (deadline → DEADLINE_EXCEEDED, overload →
 * RESOURCE_EXHAUSTED).
 */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type LocalErrorCode =
  | 'no_route'
  | 'no_cluster'
  | 'no_healthy_upstream'
  | 'no_original_destination'
  | 'routing_loop'
  | 'upstream_connect_failure'
  | 'upstream_reset'
  | 'upstream_timeout'
  | 'deadline_exceeded'
  | 'bad_request'
  | 'request_too_large'
  | 'headers_too_large'
  | 'overload'
  | 'downstream_reset'
  | 'protocol_error'
  | 'method_not_allowed'
  | 'invalid_argument'
  | 'response_too_large'
  | 'origin_not_allowed'
  | 'ping_timeout'
  | 'filter_error'
  | 'upstream_overflow'
  | 'unauthenticated'
  | 'access_denied'
  | 'rate_limited'
  | 'rate_limit_service_error'
  | 'retries_exhausted'
  | 'fault_abort'
  | 'fault_delay';

export interface LocalErrorSpec {
  readonly httpStatus: number;
  readonly grpcStatus: number;
  /** Short Envoy-style response flag for access logs. */
  readonly flag: string;
  readonly message: string;
  /** Extra response headers of this reply. */
  readonly headers?: Readonly<Record<string, string>>;
}

export const LOCAL_ERRORS: Readonly<Record<LocalErrorCode, LocalErrorSpec>> = {
  no_route: { httpStatus: 404, grpcStatus: GrpcStatus.UNIMPLEMENTED, flag: 'NR', message: 'no route' },
  no_cluster: { httpStatus: 503, grpcStatus: GrpcStatus.UNAVAILABLE, flag: 'NC', message: 'cluster not found' },
  no_healthy_upstream: {
    httpStatus: 503,
    grpcStatus: GrpcStatus.UNAVAILABLE,
    flag: 'UH',
    message: 'no healthy upstream',
  },
  // ORIGINAL_DST clusters: the connection was not redirected (or the
  // SO_ORIGINAL_DST addon is missing) and, for HTTP, there is no usable Host.
  no_original_destination: {
    httpStatus: 503,
    grpcStatus: GrpcStatus.UNAVAILABLE,
    flag: 'OD',
    message: 'no original destination',
  },
  // ORIGINAL_DST clusters: the destination is one of the sidecar's own listeners.
  routing_loop: {
    httpStatus: 508,
    grpcStatus: GrpcStatus.FAILED_PRECONDITION,
    flag: 'LP',
    message: 'routing loop: the destination is this sidecar',
  },
  upstream_connect_failure: {
    httpStatus: 503,
    grpcStatus: GrpcStatus.UNAVAILABLE,
    flag: 'UF',
    message: 'upstream connect error',
  },
  upstream_reset: { httpStatus: 502, grpcStatus: GrpcStatus.UNAVAILABLE, flag: 'UR', message: 'upstream reset' },
  upstream_timeout: {
    httpStatus: 504,
    grpcStatus: GrpcStatus.DEADLINE_EXCEEDED,
    flag: 'UT',
    message: 'upstream request timeout',
  },
  deadline_exceeded: {
    httpStatus: 504,
    grpcStatus: GrpcStatus.DEADLINE_EXCEEDED,
    flag: 'DE',
    message: 'deadline exceeded',
  },
  bad_request: { httpStatus: 400, grpcStatus: GrpcStatus.INTERNAL, flag: 'BR', message: 'bad request' },
  request_too_large: {
    httpStatus: 413,
    grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED,
    flag: 'RL',
    message: 'request body too large',
  },
  headers_too_large: {
    httpStatus: 431,
    grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED,
    flag: 'HL',
    message: 'request headers too large',
  },
  overload: { httpStatus: 503, grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED, flag: 'LO', message: 'overloaded' },
  downstream_reset: { httpStatus: 499, grpcStatus: GrpcStatus.CANCELLED, flag: 'DC', message: 'client cancelled' },
  protocol_error: { httpStatus: 400, grpcStatus: GrpcStatus.INTERNAL, flag: 'DPE', message: 'protocol error' },
  // Transcoding: a REST binding exists for the path but not for the method.
  method_not_allowed: {
    httpStatus: 405,
    grpcStatus: GrpcStatus.UNIMPLEMENTED,
    flag: 'MNA',
    message: 'method not allowed',
  },
  // Transcoding: the request could not be bound to the method's input message.
  invalid_argument: { httpStatus: 400, grpcStatus: GrpcStatus.INVALID_ARGUMENT, flag: 'IA', message: 'invalid argument' },
  // Transcoding: a unary answer larger than transcode.maxResponseBytes.
  response_too_large: {
    httpStatus: 500,
    grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED,
    flag: 'RTL',
    message: 'response too large',
  },
  // Browser origin rules (CORS, the WebSocket bridge's Origin check).
  origin_not_allowed: {
    httpStatus: 403,
    grpcStatus: GrpcStatus.PERMISSION_DENIED,
    flag: 'OR',
    message: 'origin not allowed',
  },
  // WebSocket bridge: the client missed a ping; the connection is terminated.
  ping_timeout: { httpStatus: 408, grpcStatus: GrpcStatus.CANCELLED, flag: 'PT', message: 'client did not answer ping' },
  // A filter failed (threw or rejected): the request is refused, never let through unchecked.
  filter_error: { httpStatus: 500, grpcStatus: GrpcStatus.INTERNAL, flag: 'FE', message: 'filter failed' },
  // A cluster's circuit breaker is open (Cluster.circuitBreakers): refused rather than queued.
  upstream_overflow: {
    httpStatus: 503,
    grpcStatus: GrpcStatus.UNAVAILABLE,
    flag: 'UO',
    message: 'upstream overflow',
    headers: { 'x-outrigger-overloaded': 'true' },
  },
  // jwtAuthn / apiKeys: no valid credential (docs/filters.md).
  unauthenticated: { httpStatus: 401, grpcStatus: GrpcStatus.UNAUTHENTICATED, flag: 'UA', message: 'unauthenticated' },
  // rbac: a policy refused the request (the policy is named in the audit log only).
  access_denied: { httpStatus: 403, grpcStatus: GrpcStatus.PERMISSION_DENIED, flag: 'UZ', message: 'access denied' },
  // localRateLimit / globalRateLimit: over a limit.
  rate_limited: { httpStatus: 429, grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED, flag: 'RLX', message: 'rate limited' },
  // globalRateLimit with FAILURE_MODE_DENY: Redis did not decide in time.
  rate_limit_service_error: {
    httpStatus: 500,
    grpcStatus: GrpcStatus.UNAVAILABLE,
    flag: 'RLSE',
    message: 'rate limit service unavailable',
  },
  // A route's retry policy wanted another attempt but numRetries were used up (or, hedging, maxAttempts):
  // the last upstream answer is returned; this row gives its access-log flag (docs/resilience.md).
  retries_exhausted: { httpStatus: 503, grpcStatus: GrpcStatus.UNAVAILABLE, flag: 'URX', message: 'retries exhausted' },
  // A route's fault.abort answered (docs/routing.md#fault-injection); the route gives the status, these are fallbacks.
  fault_abort: { httpStatus: 503, grpcStatus: GrpcStatus.UNAVAILABLE, flag: 'FI', message: 'fault filter abort' },
  // A route's fault.delay held the request: never a reply of its own, only the flag, which accumulates
  // with whatever flag the rest of the exchange earns (DI,DC; DI,UT).
  fault_delay: { httpStatus: 200, grpcStatus: GrpcStatus.OK, flag: 'DI', message: 'fault filter delay' },
};

/** The access-log flag of a local error code (for dialects that write their own error bodies). */
export function flagOf(code: LocalErrorCode): string {
  return LOCAL_ERRORS[code].flag;
}

/** HTTP status of a non-gRPC upstream answer → gRPC status (PROTOCOLS.md b3). */
export function grpcStatusFromHttp(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/** gRPC status → HTTP status (PROTOCOLS.md b3, grpc-gateway v2 / Envoy / Connect). */
export function httpStatusFromGrpc(code: number): number {
  return GRPC_TO_HTTP[code] ?? 500;
}

const GRPC_TO_HTTP: readonly number[] = [
  200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401,
];

/** Connect's snake_case code names, index = gRPC code (connectrpc protocol.md). */
const CONNECT_CODES = [
  'ok', 'canceled', 'unknown', 'invalid_argument', 'deadline_exceeded', 'not_found', 'already_exists', 'permission_denied',
  'resource_exhausted', 'failed_precondition', 'aborted', 'out_of_range', 'unimplemented', 'internal', 'unavailable',
  'data_loss', 'unauthenticated',
] as const;

/** The Connect protocol's name of a gRPC status code. */
export function connectCode(code: number): string {
  return CONNECT_CODES[code] ?? 'unknown';
}

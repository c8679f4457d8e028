/**
 * The words of `route.retryPolicy.retryOn` and the gRPC status names of
 * `route.hedgePolicy.nonFatalStatusCodes`, shared by the config validator
 * (which reports unknown ones with their field path) and the route compiler
 * (which turns them into bits), so the two can never disagree.
 */

/** Bounds and defaults of the retry and hedge fields (docs/config.md#retries-and-hedging). */
export const MAX_NUM_RETRIES = 10;
export const MAX_HEDGE_ATTEMPTS = 5;
export const MAX_BUFFER_LIMIT_BYTES = 16 * 1024 * 1024;
export const DEFAULT_BASE_INTERVAL_MS = 25;

/** Envoy's `retry_on` words we implement, each with its bit. */
export const RETRY_ON = {
  '5xx': 1 << 0,
  'gateway-error': 1 << 1,
  reset: 1 << 2,
  'connect-failure': 1 << 3,
  'refused-stream': 1 << 4,
  'retriable-4xx': 1 << 5,
  'retriable-status-codes': 1 << 6,
  // Envoy's x-envoy-retry-grpc-on words: the grpc-status of a response head (trailers-only answers).
  cancelled: 1 << 7,
  'deadline-exceeded': 1 << 8,
  internal: 1 << 9,
  'resource-exhausted': 1 << 10,
  unavailable: 1 << 11,
} as const;

export type RetryOnWord = keyof typeof RETRY_ON;

/** Istio's default conditions, used when a retry policy lists none. */
export const DEFAULT_RETRY_ON: readonly RetryOnWord[] = ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'];

/**
 * The words of one `retryOn` entry (an entry may hold several, comma
 * separated, as Envoy's `retry_on` string does). Unknown words are returned
 * in `unknown`.
 */
export function parseRetryOn(entry: string): { bits: number; unknown: string[] } {
  let bits = 0;
  const unknown: string[] = [];
  for (const raw of entry.split(',')) {
    const w = raw.trim().toLowerCase();
    if (w === '') continue;
    const b = (RETRY_ON as Record<string, number>)[w];
    if (b === undefined) unknown.push(raw.trim());
    else bits |= b;
  }
  return { bits, unknown };
}

const GRPC_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE',
  'DATA_LOSS', 'UNAUTHENTICATED',
] as const;

/**
 * A gRPC status code from its name (gRFC A6 style: "UNAVAILABLE", any case,
 * `-` for `_`) or its number ("14"); undefined when it is neither.
 */
export function parseGrpcStatus(s: string): number | undefined {
  const t = s.trim();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    return n <= 16 ? n : undefined;
  }
  const i = (GRPC_NAMES as readonly string[]).indexOf(t.toUpperCase().replace(/-/g, '_'));
  return i < 0 ? undefined : i;
}

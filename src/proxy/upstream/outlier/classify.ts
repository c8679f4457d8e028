import type { AttemptOutcome } from '../endpoint-stats.js';

/** How outlier detection reads one attempt's end (Envoy's classes). */
export interface OutcomeClass {
  /** Not the endpoint's doing (the client went away): not counted at all. */
  readonly ignored: boolean;
  /** 5xx, a local upstream failure, or a gRPC status Envoy maps to 5xx. */
  readonly is5xx: boolean;
  /** 502/503/504, connect failure, reset, upstream timeout; gRPC UNAVAILABLE. */
  readonly gateway: boolean;
  /** The failure happened here: connect failure, reset, timeout. */
  readonly localOrigin: boolean;
}

/** Local-reply flags of failures reaching the endpoint: connect failure, reset, upstream timeout. */
const LOCAL_ORIGIN_FLAGS = new Set(['UF', 'UR', 'UT']);
/** gRPC statuses counted as server errors: UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE, DATA_LOSS. */
const GRPC_5XX = new Set(['2', '4', '13', '14', '15']);
const GRPC_GATEWAY = new Set(['14']);
const IGNORED: OutcomeClass = { ignored: true, is5xx: false, gateway: false, localOrigin: false };

export function classify(o: AttemptOutcome): OutcomeClass {
  if (o.abandoned === true) return IGNORED;
  // Local replies that are not about the endpoint (client gone, filter, deadline of the caller).
  if (o.flag !== undefined && !LOCAL_ORIGIN_FLAGS.has(o.flag)) return IGNORED;
  const localOrigin = o.flag !== undefined;
  const gateway = localOrigin || o.status === 502 || o.status === 503 || o.status === 504 || (o.grpcStatus !== undefined && GRPC_GATEWAY.has(o.grpcStatus));
  const is5xx = gateway || o.status >= 500 || (o.grpcStatus !== undefined && GRPC_5XX.has(o.grpcStatus));
  return { ignored: false, is5xx, gateway, localOrigin };
}

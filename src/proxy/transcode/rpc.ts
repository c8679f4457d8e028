import { flagOf } from '../../core/errors.js';
import type { DescMethod } from '@bufbuild/protobuf';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { ProxyContext } from '../context.js';
import type { AbortScope } from '../../core/abort-scope.js';
import type { AbortReason, Downstream } from '../downstream/downstream.js';
import type { Exchange } from '../http/exchange.js';
import { decideRequestId } from '../http/request-id.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import type { EndpointAddress } from '../upstream/endpoint.js';
import { GrpcCall, type CallEnd, type CallHandlers, type CallRetries } from './grpc-call.js';
import type { PickInfo } from '../upstream/lb/picker.js';
import { planFor, safeToRepeat, type RouteRetries } from '../upstream/retry/retry-policy.js';
import { timeoutHeader } from './metadata.js';
import type { Transcoder } from './transcoder.js';

/** What a dialect handler (gRPC-Web, Connect, WebSocket) needs to call the backend. */
export interface RpcTarget {
  /** The client's side when it is an HTTP exchange (REST, Connect, gRPC-Web); the WebSocket bridge has none. */
  readonly ds?: Downstream;
  readonly ctx: ProxyContext;
  readonly tr: Transcoder;
  readonly ex: Exchange;
  readonly cluster: ClusterRuntime;
  readonly ep: EndpointAddress;
  readonly routeTimeoutMs: number;
  readonly authority: string;
  readonly clientAddress: string;
  readonly trustedHops: number;
  /** The exchange's cancellation (client gone, deadlines): every upstream call honours it. */
  readonly scope: AbortScope<AbortReason>;
  /** What the first pick saw (retries and hedges pick with it). */
  readonly pickInfo?: PickInfo | undefined;
  /** The route's retry and hedge policies (the method's idempotency chooses between them). */
  readonly retries?: RouteRetries | undefined;
  /** Starts this request's mirrored copy of its call, when the route mirrors it (drawn by its percentage). */
  readonly mirror?: CallRetries['mirror'];
}

/**
 * Request headers that describe the client's transport, not the call: never
 * passed on as metadata by the gRPC-Web and Connect dialects (whose other
 * headers are metadata as-is, as in gRPC itself).
 */
const NOT_METADATA = new Set([
  'host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings',
  'content-type', 'content-length', 'content-encoding', 'accept', 'accept-encoding', 'x-grpc-web', 'grpc-timeout',
  'grpc-encoding', 'grpc-accept-encoding', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-request-id',
  'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol',
  'access-control-request-method', 'access-control-request-headers',
]);

const ASCII = /^[\x20-\x7e]*$/;

/** Headers → metadata for the gRPC-shaped dialects: everything but transport headers, `connect-*` and `x-outrigger-*`. */
export function passMetadata(h: IncomingHttpHeaders, out: OutgoingHttpHeaders): void {
  // for…in, and arrays only for repeated headers: this runs for every Connect and gRPC-Web call.
  for (const k in h) {
    const v = h[k];
    if (v === undefined || k.charCodeAt(0) === 58 /* ':' */ || NOT_METADATA.has(k) || k.startsWith('connect-') || k.startsWith('x-outrigger-')) continue;
    const bin = k.endsWith('-bin');
    if (!Array.isArray(v)) {
      if (bin || ASCII.test(v)) out[k] = v;
      continue;
    }
    const vals = v.filter((x) => bin || ASCII.test(x));
    if (vals.length > 0) out[k] = vals.length === 1 ? vals[0] : vals;
  }
}

/** Response metadata the dialects never echo (they describe the gRPC transport). */
const TRANSPORT = new Set(['content-type', 'content-length', 'grpc-encoding', 'grpc-accept-encoding', 'date', 'grpc-status', 'grpc-message', 'grpc-status-details-bin']);

export function callMetadata(h: IncomingHttpHeaders): [string, string[]][] {
  const out: [string, string[]][] = [];
  for (const k in h) {
    const v = h[k];
    if (v === undefined || k.charCodeAt(0) === 58 /* ':' */ || TRANSPORT.has(k)) continue;
    out.push([k, Array.isArray(v) ? v : [String(v)]]);
  }
  return out;
}

/** The shorter of the route timeout and the client's (dialect-specific) deadline; negative client values are ignored. */
export function deadlineMs(routeMs: number, clientMs: number): number {
  if (clientMs >= 0 && (routeMs === 0 || clientMs < routeMs)) return clientMs;
  return routeMs;
}

/**
 * Starts one upstream gRPC call for `method`: path, authority, request id,
 * forwarding headers and grpc-timeout are set here; `md` holds the
 * dialect's metadata. The exchange's scope cancels it when the client goes
 * away and carries its deadline.
 */
export function startRpc(
  t: RpcTarget,
  method: DescMethod,
  md: OutgoingHttpHeaders,
  reqHeaders: IncomingHttpHeaders,
  timeoutMs: number,
  h: CallHandlers,
  /** The client's HTTP method (a GET, e.g. Connect's, may be hedged). */
  httpMethod = 'POST',
): GrpcCall {
  md[':path'] = `/${method.parent.typeName}/${method.name}`;
  md[':authority'] = t.authority;
  // Decided once by handleExchange (request-id.ts); the fallback serves callers outside the pipeline.
  md['x-request-id'] = t.ex.request_id ??= decideRequestId(reqHeaders, t.trustedHops);
  const xff = reqHeaders['x-forwarded-for'];
  md['x-forwarded-for'] = t.trustedHops > 0 && typeof xff === 'string' && xff ? `${xff}, ${t.clientAddress}` : t.clientAddress;
  const host = reqHeaders[':authority'] ?? reqHeaders['host'];
  if (typeof host === 'string') md['x-forwarded-host'] = host;
  if (timeoutMs > 0) md['grpc-timeout'] = timeoutHeader(timeoutMs);
  return new GrpcCall(t.ctx, t.cluster, t.ep, md, timeoutMs, {
    onHeaders: h.onHeaders,
    onMessage: h.onMessage,
    onEnd: (e) => {
      if (e.local) t.ex.flags = flagOf('upstream_connect_failure');
      else if (e.code === 4 && t.ex.flags === undefined) t.ex.flags = flagOf('upstream_timeout');
      noteRetries(t.ex, e, t.ds);
      t.ex.grpc_status = String(e.code);
      h.onEnd(e);
    },
  }, t.scope, retriesOf(t, method, httpMethod));
}

/** The retry or hedge plan of one call of `method` (hedging when it is safe to repeat). */
export function retriesOf(t: RpcTarget, method: DescMethod, httpMethod: string): CallRetries | undefined {
  if (t.retries === undefined) return { pickInfo: undefined, plan: undefined, exchange: t.ex, mirror: t.mirror };
  return { pickInfo: t.pickInfo, plan: planFor(t.retries, () => safeToRepeat(httpMethod, false, method)), exchange: t.ex, mirror: t.mirror };
}

/**
 * The access-log side of a call's attempts: URX / UO when retrying stopped
 * short, and the attempt count. UO also tells the client, in whatever dialect
 * answers, that the mesh shed the retry (`x-outrigger-overloaded`, as relayed
 * and local answers carry it).
 */
export function noteRetries(ex: Exchange, e: CallEnd, ds: Downstream | undefined): void {
  if (e.attempts > 1) ex.attempts = e.attempts;
  if (e.endpoint !== undefined) ex.upstream = e.endpoint;
  const m = e.retries;
  if (m === undefined) return;
  if (m.kind === 'overflow') {
    ex.flags = flagOf('upstream_overflow');
    ds?.addResponseHeader('x-outrigger-overloaded', 'true');
  } else ex.flags = ex.flags === undefined ? flagOf('retries_exhausted') : `${ex.flags},${flagOf('retries_exhausted')}`;
}

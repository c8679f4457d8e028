import { parseGrpcTimeout } from '../../core/duration.js';
import { LOCAL_ERRORS } from '../../core/errors.js';
import type { ProxyContext } from '../context.js';
import type { AbortReason, Downstream } from '../downstream/downstream.js';
import type { WsDownstream } from '../downstream/ws-downstream.js';
import type { FilterVerdict } from '../filters/filter.js';
import { forward } from '../forward/forward.js';
import type { ListenerView } from '../state/listener-view.js';
import { localReply, sendReply } from '../downstream/local-reply.js';
import type { RouteActionCompiled, RouteMatchResult, WeightedTarget } from '../router/types.js';
import { chooseWeighted } from '../router/traffic.js';
import { injectFault } from './fault.js';
import { grpcMirror, mirrorOf } from './mirror.js';
import { classifyTranscoded, serveTranscoded, type ServedDialect } from '../transcode/dispatch.js';
import type { Transcoder } from '../transcode/transcoder.js';
import { bridgeMethodOf, bridgeWebSocket } from '../transcode/websocket/bridge.js';
import { rewritePath } from './rewrite.js';
import { requestHash } from '../router/index.js';
import { decideRequestId } from '../http/request-id.js';
import type { PickInfo } from '../upstream/lb/picker.js';
import { planFor, safeToRepeat } from '../upstream/retry/retry-policy.js';
import type { DescMethod } from '@bufbuild/protobuf';

type ClusterAction = Extract<RouteActionCompiled, { kind: 'cluster' }>;

/**
 * The one request path. Every codec (HTTP/1.1, HTTP/2 and gRPC, WebSocket
 * upgrades) turns what arrived into a Downstream and calls this; the stages
 * run in this order, and the order is the design:
 *
 * 1. **Route** (listener route table; no match → the OpenAPI document of a
 *    transcoding route on GET, else `no_route`). First, because everything
 *    after depends on the route: its filter chain, timeout, cluster, whether
 *    it transcodes.
 * 2. **Deadline**: the route timeout and the client's `grpc-timeout`, the
 *    shorter, armed on the exchange's scope before any filter runs, so an
 *    async filter (a JWKS fetch, a Redis call) spends the client's budget
 *    rather than extending it. Transcoding dialects arm theirs (Connect's
 *    `connect-timeout-ms`…) on the same scope in step 5.
 * 3. **Filter chain**, request phase (authn → authz → rate limit → … as
 *    listed; may answer locally). Before the pick, so a refused request costs
 *    no endpoint choice and no upstream connection, and after routing, so
 *    direct responses are protected like proxied ones.
 * 4. **Direct response** or **pick**: the cluster's picker (its LB policy)
 *    chooses the endpoint.
 * 5. **Terminal**: the transcoder (REST, gRPC-Web, Connect, the WebSocket
 *    bridge) or a forwarder chosen by downstream protocol × upstream protocol.
 * 6. **Response filters** run inside `Downstream.respond`, which every writer
 *    of a response goes through (forwarders, dialects, local replies).
 * 7. **Log**: the codec finishes the Exchange (access-log line, metrics) when
 *    the client side closes.
 */
export function handleExchange(ctx: ProxyContext, view: ListenerView, ds: Downstream): void {
  // Heap over --max-heap-fraction: new requests get LO (503 / RESOURCE_EXHAUSTED), work in flight goes on.
  if (ctx.overload?.overloaded) return localReply(ds, 'overload');
  const settings = view.settings;
  const ex = ds.ex;
  // Correlation: the one request id of this exchange, before anything can answer (local replies carry it).
  ex.request_id = decideRequestId(ds.headers, settings.trustedHops);
  // Tracing: the trace that arrived (or a new one) and the sampling decision, from the client's headers as
  // they came (x-outrigger-force-trace included: the forwarders drop x-outrigger-* when they copy headers).
  // The listener may turn tracing off or sample new traces at its own ratio (Listener.tracing).
  const tracer = ctx.telemetry?.tracer;
  if (tracer !== undefined && !settings.tracingOff) ex.trace = tracer.begin(ds.headers, settings.traceSampling);
  const target = ds.target;
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const match = settings.routes?.match({ host: ds.authority, method: ds.method, path, headers: ds.headers, isGrpc: ds.grpc });
  if (!match) {
    // The listener's response filters (security headers, CORS, header changes) apply to this answer too.
    if (settings.chain.hasResponseHeaders) ds.chain = settings.chain;
    const doc = ds.kind !== 'ws' && !ds.grpc && (ds.method === 'GET' || ds.method === 'HEAD') ? settings.openapi?.get(path) : undefined;
    if (!doc) return localReply(ds, 'no_route');
    return sendReply(ds, 200, { 'content-type': 'application/json', 'content-length': doc.body.length, 'cache-control': 'no-cache', etag: doc.etag }, doc.body);
  }
  const route = match.route;
  ex.route = route.name;
  const action = route.action;
  // Which terminal a transcoding route leads to is known now (pure); it labels
  // the exchange before filters run, which may key on the dialect.
  let tr: Transcoder | undefined;
  let dialect: ServedDialect | undefined;
  let split: WeightedTarget | undefined;
  if (action.kind === 'cluster') {
    // A weighted split is drawn here, once per request, so filters see the cluster it goes to.
    if (action.weighted !== undefined) split = chooseWeighted(action.weighted, view.state.random.next());
    // Known from the route: request filters (header templates' %CLUSTER%) may read it before the pick.
    ds.routeCluster = split === undefined ? action.cluster : split.cluster;
    armDeadline(ctx, ds, action);
    tr = action.transcode && !ds.grpc ? view.state.transcoders.get(action.transcode) : undefined;
    // A gRPC call's descriptor, for filters that read it (the cache: idempotency level).
    if (ds.grpc && action.transcode) ds.rpc = grpcMethodOf(view, action, ds);
    if (tr) {
      if (ds.kind !== 'ws') dialect = classifyTranscoded(tr, ds);
      else if (bridgeMethodOf(tr, target)) ex.protocol = 'websocket-bridge';
    }
  }
  const chain = settings.chains.get(route) ?? settings.chain;
  if (!chain.hasRequestHeaders) {
    if (!chain.isEmpty) ds.chain = chain;
    return afterFilters(ctx, view, ds, match, tr, dialect, split, undefined);
  }
  ds.chain = chain;
  chain.runRequestHeaders(ds, (v) => afterFilters(ctx, view, ds, match, tr, dialect, split, v), 0, onTimeoutDuringFilters);
}

function afterFilters(
  ctx: ProxyContext,
  view: ListenerView,
  ds: Downstream,
  match: RouteMatchResult,
  tr: Transcoder | undefined,
  dialect: ServedDialect | undefined,
  split: WeightedTarget | undefined,
  verdict: FilterVerdict,
): void {
  if (verdict !== undefined) return filterReply(ds, verdict);
  if (!ds.scope.open) return; // the client left (or a deadline passed) while async filters ran
  const action = match.route.action;
  if (action.kind === 'direct') return sendReply(ds, action.status, { 'content-type': 'text/plain; charset=utf-8' }, action.body);
  // Fault injection (docs/routing.md#fault-injection): after the filters, as Envoy's fault filter sits last before the router.
  if (action.fault !== undefined) {
    return injectFault(ctx.clock, view.state.random, ds, action.fault, () => toUpstream(ctx, view, ds, match, action, tr, dialect, split), onTimeoutDuringFilters);
  }
  toUpstream(ctx, view, ds, match, action, tr, dialect, split);
}

/** Step 4 and 5 for a cluster route: circuit breakers, pick (within the route's subset), then the terminal. */
function toUpstream(
  ctx: ProxyContext,
  view: ListenerView,
  ds: Downstream,
  match: RouteMatchResult,
  action: ClusterAction,
  tr: Transcoder | undefined,
  dialect: ServedDialect | undefined,
  split: WeightedTarget | undefined,
): void {
  const ex = ds.ex;
  const clusterName = split === undefined ? action.cluster : split.cluster;
  ex.cluster = clusterName;
  const cluster = view.state.clusters.get(clusterName);
  if (!cluster) return localReply(ds, 'no_cluster', clusterName);
  // Circuit breakers (issue 12): over a cluster limit the request is refused (UO), not queued.
  const overflow = cluster.overflow(tr !== undefined || cluster.usesH2(ds.kind === 'h2'));
  if (overflow) {
    ctx.metrics.upstreamOverflow(cluster.name, overflow);
    return localReply(ds, 'upstream_overflow', `${cluster.name}: ${overflow}`);
  }
  const pickInfo: PickInfo = {
    originalDst: ds.conn.originalDst,
    authority: ds.authority,
    scheme: ds.conn.scheme,
    headers: ds.headers,
    clientAddress: ds.conn.clientAddress,
    hash:
      action.hashPolicy !== undefined
        ? requestHash(action.hashPolicy, {
            headers: ds.headers,
            target: ds.target,
            clientAddress: ds.conn.clientAddress,
            // A cookie policy with a ttl sets its generated cookie on the response (once per connection's value).
            connection: ds.conn,
            setCookie: (v) => ds.addResponseHeader('set-cookie', v),
          })
        : undefined,
    subset: split === undefined ? action.subset : split.subset,
  };
  const picked = cluster.pick(pickInfo);
  // A WebSocket refusal names the ORIGINAL_DST reason only (kept from before the pipeline existed).
  if (!picked.ep) return localReply(ds, picked.code, ds.kind === 'ws' && !cluster.originalDst ? undefined : picked.detail);
  ex.upstream = picked.ep.key;
  // Upstream resilience (issue 12): the terminal makes the attempts (upstream/attempt.ts is where
  // each starts and ends); a route's retry or hedge plan lets it make more than one.
  const authority = action.hostRewrite || ds.authority;
  const settings = view.settings;
  if (tr) {
    const t = {
      ctx, tr, ex, cluster, ep: picked.ep, routeTimeoutMs: action.timeoutMs, authority, clientAddress: ds.conn.clientAddress,
      trustedHops: settings.trustedHops, scope: ds.scope, pickInfo, retries: action.retries,
    };
    if (ds.kind === 'ws') {
      const rpc = bridgeMethodOf(tr, ds.target);
      if (rpc) {
        const w = ds as WsDownstream;
        return bridgeWebSocket(t, rpc, w.req, w.socket, w.head);
      }
    } else {
      // The route's mirror gets a copy of the upstream gRPC call (grpc-call.ts), as a pass-through request's.
      const m = action.mirror !== undefined ? mirrorOf(ctx, view.state, action.mirror, ds, action.timeoutMs, true) : undefined;
      return serveTranscoded({ ...t, ds, mirror: m && grpcMirror(ctx, m) }, dialect!);
    }
  }
  const retries = action.retries;
  const plan = retries === undefined || ds.kind === 'ws' ? undefined : planFor(retries, () => safeToRepeat(ds.method, ds.grpc, ds.rpc));
  const path = rewritePath(ds.target, match, action);
  const mirror = action.mirror !== undefined && ds.kind !== 'ws' ? mirrorOf(ctx, view.state, action.mirror, ds, action.timeoutMs) : undefined;
  forward(ctx, ds, { cluster, ep: picked.ep, path, authority, settings, pickInfo, plan, mirror });
}

/** The descriptor of a gRPC request's method, when its route has descriptors (a transcoding route): hedging reads its idempotency. */
function grpcMethodOf(view: ListenerView, action: ClusterAction, ds: Downstream): DescMethod | undefined {
  if (!ds.grpc || !action.transcode) return undefined;
  return view.state.transcoders.get(action.transcode)?.methods.get(ds.target);
}

/**
 * Step 2: the shorter of the route timeout and the client's grpc-timeout
 * (HTTP/2 only). A gRPC caller, or any caller whose own deadline it is, is
 * told DEADLINE_EXCEEDED (flag DE); a route timeout on plain HTTP is 504 (UT).
 * WebSocket upgrades are not timed (a bridged or spliced socket lives as long
 * as the client keeps it). Transcoded dialects get the route timeout here;
 * their own deadline headers (Connect's `connect-timeout-ms`, gRPC-Web's
 * `grpc-timeout`) are read by the dialect, which arms the shorter one later.
 */
function armDeadline(ctx: ProxyContext, ds: Downstream, action: ClusterAction): void {
  if (ds.kind === 'ws') return;
  if (action.transcode && !ds.grpc) {
    if (action.timeoutMs > 0) ds.scope.deadline(ctx.clock, action.timeoutMs, 'upstream_timeout');
    return;
  }
  let ms = action.timeoutMs;
  let fromClient = false;
  if (ds.kind === 'h2') {
    const gt = ds.headers['grpc-timeout'];
    if (gt !== undefined) {
      const c = parseGrpcTimeout(gt as string);
      if (c >= 0 && (ms === 0 || c < ms)) {
        ms = c;
        fromClient = true;
      }
    }
  }
  if (ms > 0) ds.scope.deadline(ctx.clock, ms, fromClient || ds.grpc ? 'deadline_exceeded' : 'upstream_timeout');
}

/** A deadline that passes, or a client that leaves, while an async filter works: nobody else is answering yet. */
function onTimeoutDuringFilters(ds: Downstream, reason: AbortReason): void {
  if (reason === 'downstream_reset') ds.ex.flags ??= LOCAL_ERRORS.downstream_reset.flag;
  else localReply(ds, reason);
}

function filterReply(ds: Downstream, v: NonNullable<FilterVerdict>): void {
  ds.scope.dispose();
  if ('code' in v) return localReply(ds, v.code, v.detail, v.extras);
  if (v.flag !== undefined) ds.ex.flags = v.flag;
  // The request body is not wanted: let it flow away rather than stall the connection.
  if (ds.kind !== 'ws') ds.body.resume();
  if (v.trailers !== undefined) {
    // A complete gRPC answer (a cached one): head, message, trailers.
    ds.ex.status = v.status;
    if (ds.closed) return;
    ds.respond(v.status, v.headers, true);
    return ds.end(v.body, v.trailers);
  }
  if (ds.grpc && v.body === undefined && v.headers['grpc-status'] !== undefined) {
    // A gRPC status of the filter's own (a plugin's reply): trailers-only, like the error table's replies.
    ds.ex.status = v.status;
    ds.ex.grpc_status = String(v.headers['grpc-status']);
    if (!ds.closed) ds.respondEnd(v.status, v.headers);
    return;
  }
  sendReply(ds, v.status, v.headers, v.body);
}


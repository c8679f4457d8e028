import type { ProxyContext } from '../context.js';
import type { Downstream } from '../downstream/downstream.js';
import { shadowAuthority } from '../forward/forward.js';
import { Shadow } from '../forward/shadow.js';
import type { MirrorTarget } from '../forward/upstream-target.js';
import type { MirrorCopy } from '../transcode/grpc-call.js';
import type { MirrorPlan } from '../router/types.js';
import type { ProxyState } from '../state/proxy-state.js';

/** A mirrored copy's bound when the route has no timeout. */
export const DEFAULT_MIRROR_TIMEOUT_MS = 15_000;

/**
 * Whether this request is mirrored (the plan's percentage, drawn with the
 * injected random) and where to: the mirror cluster's picker chooses the
 * endpoint now. A copy that cannot be sent (no such cluster yet, no healthy
 * endpoint, a circuit breaker at its limit) is counted `skipped` and the
 * request goes on alone.
 */
export function mirrorOf(
  ctx: ProxyContext,
  state: ProxyState,
  plan: MirrorPlan,
  ds: Downstream,
  routeTimeoutMs: number,
  /** The copy goes over HTTP/2 whatever the caller spoke (a transcoded request's gRPC call). */
  grpcCall = false,
): MirrorTarget | undefined {
  if (plan.fraction < 1 && !(plan.fraction > 0 && state.random.next() < plan.fraction)) return undefined;
  const cluster = state.clusters.get(plan.cluster);
  const skipped = (): undefined => void ctx.metrics.mirrors.inc({ cluster: plan.cluster, result: 'skipped' });
  if (cluster === undefined || cluster.overflow(grpcCall || cluster.usesH2(ds.kind === 'h2')) !== undefined) return skipped();
  const pickInfo = { authority: ds.authority, scheme: ds.conn.scheme, headers: ds.headers, clientAddress: ds.conn.clientAddress };
  const picked = cluster.pick(pickInfo);
  if (picked.ep === undefined) return skipped();
  return { cluster, ep: picked.ep, pickInfo, timeoutMs: routeTimeoutMs > 0 ? routeTimeoutMs : DEFAULT_MIRROR_TIMEOUT_MS };
}

/**
 * The mirror of a transcoded request (REST, Connect, gRPC-Web → gRPC): a
 * copy of its upstream gRPC call, with the call's metadata and the mirror's
 * `-shadow` authority, fed the same request frames; as for a pass-through
 * request, its answer is dropped and its failures only counted.
 */
export function grpcMirror(ctx: ProxyContext, target: MirrorTarget): (headers: Readonly<Record<string, unknown>>) => MirrorCopy {
  return (headers) => {
    const copy = { ...headers, ':authority': shadowAuthority(String(headers[':authority'] ?? '')) };
    return new Shadow(ctx, { target, method: 'POST', path: String(headers[':path']), headers: copy, upstreamH2: true, grpc: true }, true);
  };
}

import type { OutgoingHttpHeaders } from 'node:http2';
import type { ProxyContext } from '../context.js';
import type { Downstream } from '../downstream/downstream.js';
import type { H1Downstream } from '../downstream/h1-downstream.js';
import type { H2Downstream } from '../downstream/h2-downstream.js';
import type { WsDownstream } from '../downstream/ws-downstream.js';
import { copyRequestHeaders } from '../http/headers.js';
import { relay } from './relay.js';
import type { ShadowRequest } from './shadow.js';
import type { UpstreamTarget } from './upstream-target.js';
import { forwardWebSocket } from './websocket.js';

/** Envoy's x-forwarded-client-cert for a verified mesh peer: `By=<our SPIFFE ID>;URI=<the peer's>`. */
function xfccOf(ctx: ProxyContext, peer: string): string {
  const me = ctx.identity?.current()?.spiffeId;
  return me !== undefined ? `By=${me};URI=${peer}` : `URI=${peer}`;
}

/**
 * The pass-through terminal: builds the upstream request headers
 * (hop-by-hop headers dropped, x-forwarded-*, x-request-id) in the form of
 * the cluster's upstream protocol, then hands the exchange to the relay
 * (HTTP/1.1 and HTTP/2 clients, any upstream protocol, retries and hedging)
 * or, for WebSocket upgrades, to the splicing forwarder.
 */
export function forward(ctx: ProxyContext, ds: Downstream, t: UpstreamTarget): void {
  // request_id is decided by handleExchange before any terminal runs (observability: one id per exchange).
  const fwd = {
    clientAddress: ds.conn.clientAddress,
    scheme: ds.conn.scheme,
    trustedHops: t.settings.trustedHops,
    requestId: ds.ex.request_id!,
    clientCert: ds.conn.peerPrincipal !== undefined && t.settings.config.forwardClientCert ? xfccOf(ctx, ds.conn.peerPrincipal) : undefined,
  };
  if (ds.kind === 'ws') {
    const out: Record<string, string | string[]> = {};
    ds.ex.request_id = copyRequestHeaders(ds.headers, out, fwd);
    out['host'] = t.authority;
    out['connection'] = 'Upgrade';
    out['upgrade'] = ds.headers.upgrade ?? 'websocket';
    return forwardWebSocket(ctx, ds as WsDownstream, t, out);
  }
  const upH2 = t.cluster.usesH2(ds.kind === 'h2');
  const out = upstreamHeaders(ds, t.path, t.authority, upH2, fwd);
  const m = t.mirror;
  let shadow: ShadowRequest | undefined;
  if (m !== undefined) {
    // The copy's headers are built like the real request's (x-forwarded-for under the same trustedHops), for its cluster's protocol.
    const mH2 = m.cluster.usesH2(ds.kind === 'h2');
    shadow = { target: m, method: ds.method, path: t.path, headers: upstreamHeaders(ds, t.path, shadowAuthority(t.authority), mH2, fwd), upstreamH2: mH2, grpc: ds.grpc };
  }
  relay(ctx, ds as H1Downstream | H2Downstream, t, out, upH2, shadow);
}

/** The request headers towards an upstream of either protocol (the exchange's request id is noted from them). */
function upstreamHeaders(ds: Downstream, path: string, authority: string, upH2: boolean, fwd: Parameters<typeof copyRequestHeaders>[2]): Record<string, unknown> {
  if (upH2) {
    const out: OutgoingHttpHeaders = { ':method': ds.method, ':path': path, ':authority': authority, ':scheme': 'http' };
    ds.ex.request_id = copyRequestHeaders(ds.headers, out as Record<string, string>, fwd);
    return out;
  }
  const out: Record<string, string | string[]> = {};
  ds.ex.request_id = copyRequestHeaders(ds.headers, out, fwd);
  // An HTTP/2 client's `te: trailers` means nothing to an HTTP/1.1 upstream.
  if (ds.kind === 'h2') delete out['te'];
  out['host'] = authority;
  return out;
}

/** Envoy's mirror authority: `-shadow` after the host, before any port (`api:8080` → `api-shadow:8080`). */
export function shadowAuthority(authority: string): string {
  const colon = authority.lastIndexOf(':');
  // A port follows the last colon unless it is inside an IPv6 literal ("[::1]").
  if (colon > 0 && authority.indexOf(']', colon) < 0 && /^\d+$/.test(authority.slice(colon + 1))) {
    return `${authority.slice(0, colon)}-shadow${authority.slice(colon)}`;
  }
  return `${authority}-shadow`;
}

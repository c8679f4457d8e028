import type { OutgoingHttpHeaders } from 'node:http2';
import type { ProxyContext } from '../context.js';
import type { Downstream } from '../downstream/downstream.js';
import type { H1Downstream } from '../downstream/h1-downstream.js';
import type { H2Downstream } from '../downstream/h2-downstream.js';
import type { WsDownstream } from '../downstream/ws-downstream.js';
import { copyRequestHeaders } from '../http/headers.js';
import { relay } from './relay.js';
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
  if (upH2) {
    const out: OutgoingHttpHeaders = { ':method': ds.method, ':path': t.path, ':authority': t.authority, ':scheme': 'http' };
    ds.ex.request_id = copyRequestHeaders(ds.headers, out as Record<string, string>, fwd);
    return relay(ctx, ds as H1Downstream | H2Downstream, t, out, true);
  }
  const out: Record<string, string | string[]> = {};
  ds.ex.request_id = copyRequestHeaders(ds.headers, out, fwd);
  // An HTTP/2 client's `te: trailers` means nothing to an HTTP/1.1 upstream.
  if (ds.kind === 'h2') delete out['te'];
  out['host'] = t.authority;
  relay(ctx, ds as H1Downstream | H2Downstream, t, out, false);
}

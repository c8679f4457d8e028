import type { OutgoingHttpHeaders } from 'node:http2';
import type { ProxyContext } from '../context.js';
import type { Downstream } from '../downstream/downstream.js';
import type { H1Downstream } from '../downstream/h1-downstream.js';
import type { H2Downstream } from '../downstream/h2-downstream.js';
import type { WsDownstream } from '../downstream/ws-downstream.js';
import { copyRequestHeaders } from '../http/headers.js';
import { forwardH1ToH1 } from './h1-to-h1.js';
import { forwardH1ToH2 } from './h1-to-h2.js';
import { forwardH2ToH1 } from './h2-to-h1.js';
import { forwardH2ToH2 } from './h2-to-h2.js';
import type { UpstreamTarget } from './upstream-target.js';
import { forwardWebSocket } from './websocket.js';

/**
 * The pass-through terminal: picks the forwarder for downstream protocol ×
 * the cluster's upstream protocol, after building the upstream request
 * headers (hop-by-hop headers dropped, x-forwarded-*, x-request-id). The
 * forwarders relay at stream level with backpressure both ways and honour
 * the exchange's scope (client gone, deadline).
 */
/** Envoy's x-forwarded-client-cert for a verified mesh peer: `By=<our SPIFFE ID>;URI=<the peer's>`. */
function xfccOf(ctx: ProxyContext, peer: string): string {
  const me = ctx.identity?.current()?.spiffeId;
  return me !== undefined ? `By=${me};URI=${peer}` : `URI=${peer}`;
}

export function forward(ctx: ProxyContext, ds: Downstream, t: UpstreamTarget): void {
  // request_id is decided by handleExchange before any terminal runs (observability: one id per exchange).
  const fwd = {
    clientAddress: ds.conn.clientAddress,
    scheme: ds.conn.scheme,
    trustedHops: t.settings.trustedHops,
    requestId: ds.ex.request_id!,
    clientCert: ds.conn.peerPrincipal !== undefined && t.settings.config.forwardClientCert ? xfccOf(ctx, ds.conn.peerPrincipal) : undefined,
  };
  switch (ds.kind) {
    case 'h2': {
      const out: OutgoingHttpHeaders = { ':method': ds.method, ':path': t.path, ':authority': t.authority, ':scheme': 'http' };
      ds.ex.request_id = copyRequestHeaders(ds.headers, out as Record<string, string>, fwd);
      if (t.cluster.usesH2(true)) return forwardH2ToH2(ctx, ds as H2Downstream, t, out);
      return forwardH2ToH1(ctx, ds as H2Downstream, t, out);
    }
    case 'h1': {
      if (t.cluster.usesH2(false)) {
        const out: OutgoingHttpHeaders = { ':method': ds.method, ':path': t.path, ':authority': t.authority, ':scheme': 'http' };
        ds.ex.request_id = copyRequestHeaders(ds.headers, out as Record<string, string>, fwd);
        return forwardH1ToH2(ctx, ds as H1Downstream, t, out, 0);
      }
      const out: Record<string, string | string[]> = {};
      ds.ex.request_id = copyRequestHeaders(ds.headers, out, fwd);
      out['host'] = t.authority;
      return forwardH1ToH1(ctx, ds as H1Downstream, t, out);
    }
    case 'ws': {
      const out: Record<string, string | string[]> = {};
      ds.ex.request_id = copyRequestHeaders(ds.headers, out, fwd);
      out['host'] = t.authority;
      out['connection'] = 'Upgrade';
      out['upgrade'] = ds.headers.upgrade ?? 'websocket';
      return forwardWebSocket(ctx, ds as WsDownstream, t, out);
    }
  }
}

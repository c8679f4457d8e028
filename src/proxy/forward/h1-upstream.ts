import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import type { ProxyContext } from '../context.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import type { EndpointAddress } from '../upstream/endpoint.js';

export interface H1UpstreamCallbacks {
  onResponse(res: IncomingMessage): void;
  /** `connected` tells a connect failure (nothing reached the upstream) from a reset. */
  onError(err: Error, connected: boolean): void;
}

/**
 * Opens a request to an HTTP/1.1 upstream through the endpoint's keep-alive
 * agent, with the cluster's connect timeout applied only while a new socket
 * is connecting (a reused keep-alive socket is already connected).
 */
export function h1UpstreamRequest(
  ctx: ProxyContext,
  ep: EndpointAddress,
  cluster: ClusterRuntime,
  method: string,
  path: string,
  headers: Record<string, string | string[]>,
  cb: H1UpstreamCallbacks,
): ClientRequest {
  const agent = ctx.h1.agent(ep, cluster.maxIdleConnections, cluster.idleTimeoutMs, cluster.upstreamTls);
  const req = http.request({ agent, host: ep.host, port: ep.port, method, path, headers, setHost: false });
  let connected = false;
  let failed = false;
  req.on('socket', (socket) => {
    if (!socket.connecting) {
      connected = true;
      return;
    }
    const timer = ctx.clock.setTimer(cluster.connectTimeoutMs, () => {
      if (!connected) req.destroy(new Error(`connect timeout after ${cluster.connectTimeoutMs}ms`));
    });
    // TLS upstreams (cluster `tls`) are connected once the handshake is done (and the peer verified).
    const tls = cluster.upstreamTls !== undefined;
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      connected = true;
      timer.cancel();
    });
    socket.once('close', () => timer.cancel());
  });
  req.on('response', (res) => cb.onResponse(res));
  req.on('error', (err) => {
    if (failed) return;
    failed = true;
    if (!connected && cluster.upstreamTls) ctx.logger.warn({ upstream: ep.key, cluster: cluster.name, err: err.message }, 'upstream TLS connection failed');
    cb.onError(err, connected);
  });
  return req;
}

/** Converts node's raw trailer object to a plain header object, or undefined when empty. */
export function trailersOf(res: IncomingMessage): Record<string, string> | undefined {
  const t = res.trailers;
  for (const _ in t) return t as Record<string, string>;
  return undefined;
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import http2, { type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Writable } from 'node:stream';
import type { ProxyContext } from '../context.js';
import { Exchange } from '../exchange.js';
import { copyRequestHeaders, copyResponseHeaders } from '../headers.js';
import type { ListenerViewRef } from '../listener-view.js';
import { h1LocalReply } from '../local-reply.js';
import type { ListenerSettings } from '../state.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import type { EndpointAddress } from '../upstream/endpoint.js';
import type { Destination } from '../upstream/original-dst.js';
import { h1UpstreamRequest, trailersOf } from './h1-upstream.js';
import { rewritePath } from './rewrite.js';
import { isRefused, resetStream } from './h2-reset.js';
import { h1Downstream } from '../transcode/downstream.js';
import { serveTranscoded } from '../transcode/dispatch.js';

const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM;
const CANCEL = http2.constants.NGHTTP2_CANCEL;
/** Bodyless requests refused upstream are replayed at most this often. */
const MAX_REFUSED_RETRIES = 4;

export interface H1ConnectionInfo {
  readonly clientAddress: string;
  readonly scheme: string;
  /** Where the connection was going before iptables redirected it (ORIGINAL_DST clusters). */
  readonly originalDst?: Destination | undefined;
}

/**
 * Handles one HTTP/1.1 request: route, then forward to an HTTP/1.1 upstream
 * through a keep-alive agent or to an HTTP/2 upstream as a stream of its
 * session. Bodies stream with pause/resume backpressure; nothing is buffered.
 */
export function onH1Request(
  ctx: ProxyContext,
  ref: ListenerViewRef,
  conn: H1ConnectionInfo,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const view = ref.view;
  const settings = view.settings;
  const ex = new Exchange(ctx, settings, 'http1');
  const method = req.method ?? 'GET';
  const rawPath = req.url ?? '/';
  const authority = req.headers.host ?? '';
  ex.method = method;
  ex.path = rawPath;
  ex.authority = authority;
  ex.captureHeaders(req.headers);
  res.once('close', () => ex.finish());
  req.on('error', noop);
  res.on('error', noop);
  if (ctx.lifecycle.draining) res.shouldKeepAlive = false;

  const q = rawPath.indexOf('?');
  const match = settings.routes?.match({
    host: authority,
    method,
    path: q < 0 ? rawPath : rawPath.slice(0, q),
    headers: req.headers,
    isGrpc: false,
  });
  if (!match) {
    const doc = (method === 'GET' || method === 'HEAD') && settings.openapi?.get(q < 0 ? rawPath : rawPath.slice(0, q));
    if (!doc) return h1LocalReply(res, ex, 'no_route');
    ex.status = 200;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': doc.body.length, 'cache-control': 'no-cache', etag: doc.etag });
    return void (method === 'HEAD' ? res.end() : res.end(doc.body));
  }
  ex.route = match.route.name;
  const action = match.route.action;
  if (action.kind === 'direct') {
    ex.status = action.status;
    res.writeHead(action.status, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(action.body);
    return;
  }
  ex.cluster = action.cluster;
  const cluster = view.state.clusters.get(action.cluster);
  if (!cluster) return h1LocalReply(res, ex, 'no_cluster', action.cluster);
  const picked = ctx.originalDst.pick(cluster, { originalDst: conn.originalDst, authority, scheme: conn.scheme });
  if (!picked.ep) return h1LocalReply(res, ex, picked.code, picked.detail);
  const ep = picked.ep;
  ex.upstream = ep.key;
  const tr = action.transcode && view.state.transcoders.get(action.transcode);
  if (tr) {
    const ds = h1Downstream(req, res);
    const host = action.hostRewrite || authority;
    return serveTranscoded({ ctx, tr, ds, ex, cluster, ep, routeTimeoutMs: action.timeoutMs, authority: host, clientAddress: conn.clientAddress, trustedHops: settings.trustedHops });
  }
  const path = rewritePath(rawPath, match, action);
  const host = action.hostRewrite || authority;
  if (cluster.usesH2(false)) {
    const out: OutgoingHttpHeaders = { ':method': method, ':path': path, ':authority': host, ':scheme': 'http' };
    ex.request_id = copyRequestHeaders(req.headers, out as Record<string, string>, fwdOf(conn, settings));
    forwardH1ToH2(ctx, settings, req, res, ex, out, ep, cluster, action.timeoutMs);
  } else {
    const out: Record<string, string | string[]> = {};
    ex.request_id = copyRequestHeaders(req.headers, out, fwdOf(conn, settings));
    out['host'] = host;
    forwardH1ToH1(ctx, settings, req, res, ex, method, path, out, ep, cluster, action.timeoutMs);
  }
}

function fwdOf(conn: H1ConnectionInfo, settings: ListenerSettings) {
  return { clientAddress: conn.clientAddress, scheme: conn.scheme, trustedHops: settings.trustedHops };
}

/** Streams the downstream body into `sink`, enforcing the listener's body limit. */
function pumpBody(req: IncomingMessage, ex: Exchange, maxBody: number, up: Writable, tooLarge: () => void): void {
  req.on('data', (c: Buffer) => {
    ex.bytes_in += c.length;
    if (maxBody > 0 && ex.bytes_in > maxBody) {
      req.pause();
      tooLarge();
      return;
    }
    if (!up.write(c)) req.pause();
  });
  up.on('drain', () => req.resume());
  req.once('end', () => up.end());
}

function forwardH1ToH1(
  ctx: ProxyContext,
  settings: ListenerSettings,
  req: IncomingMessage,
  res: ServerResponse,
  ex: Exchange,
  method: string,
  path: string,
  headers: Record<string, string | string[]>,
  ep: EndpointAddress,
  cluster: ClusterRuntime,
  timeoutMs: number,
): void {
  let responded = false;
  let done = false;
  const up = h1UpstreamRequest(ctx, ep, cluster, method, path, headers, {
    onResponse(upRes) {
      responded = true;
      ex.status = upRes.statusCode ?? 502;
      const out = copyResponseHeaders(upRes.headers, {});
      if (ctx.lifecycle.draining) out['connection'] = 'close';
      res.writeHead(ex.status, upRes.statusMessage, out);
      upRes.on('data', (c: Buffer) => {
        ex.bytes_out += c.length;
        if (!res.write(c)) upRes.pause();
      });
      res.on('drain', () => upRes.resume());
      upRes.once('end', () => {
        done = true;
        const t = trailersOf(upRes);
        if (t && res.chunkedEncoding) res.addTrailers(t);
        res.end();
      });
      upRes.once('aborted', () => res.destroy());
    },
    onError(err, connected) {
      if (responded) return void res.destroy();
      h1LocalReply(res, ex, connected ? 'upstream_reset' : 'upstream_connect_failure', err.message);
    },
  });
  const timer =
    timeoutMs > 0
      ? ctx.clock.setTimer(timeoutMs, () => {
          up.destroy();
          if (!responded) h1LocalReply(res, ex, 'upstream_timeout');
          else res.destroy();
        })
      : undefined;
  pumpBody(
    req,
    ex,
    settings.maxRequestBodyBytes,
    up,
    () => {
      up.destroy();
      res.shouldKeepAlive = false;
      h1LocalReply(res, ex, 'request_too_large');
    },
  );
  res.once('close', () => {
    timer?.cancel();
    if (!done) up.destroy();
  });
}

function forwardH1ToH2(
  ctx: ProxyContext,
  settings: ListenerSettings,
  req: IncomingMessage,
  res: ServerResponse,
  ex: Exchange,
  headers: OutgoingHttpHeaders,
  ep: EndpointAddress,
  cluster: ClusterRuntime,
  timeoutMs: number,
  attempt = 0,
): void {
  const conn = ctx.h2.get(ep, cluster.connectTimeoutMs, cluster.idleTimeoutMs);
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  let up: ClientHttp2Stream;
  try {
    up = conn.session.request(headers, { endStream: !hasBody });
  } catch (err) {
    if (attempt < MAX_REFUSED_RETRIES) return forwardH1ToH2(ctx, settings, req, res, ex, headers, ep, cluster, timeoutMs, attempt + 1);
    return h1LocalReply(res, ex, 'upstream_connect_failure', (err as Error).message);
  }
  let errorCode: string | undefined;
  up.on('error', (err: NodeJS.ErrnoException) => (errorCode = err.code));
  let responded = false;
  let ended = false;
  up.once('response', (h: IncomingHttpHeaders, flags: number) => {
    responded = true;
    ex.status = (h[':status'] as unknown as number) ?? 200;
    const out = copyResponseHeaders(h, {});
    if (ctx.lifecycle.draining) out['connection'] = 'close';
    res.writeHead(ex.status, out);
    if ((flags & END_STREAM) !== 0) {
      ended = true;
      res.end();
    }
  });
  up.on('data', (c: Buffer) => {
    ex.bytes_out += c.length;
    if (!res.write(c)) up.pause();
  });
  res.on('drain', () => up.resume());
  up.once('trailers', (t: IncomingHttpHeaders) => {
    if (res.chunkedEncoding) res.addTrailers(copyResponseHeaders(t, {}));
  });
  up.once('end', () => {
    if (up.rstCode !== undefined && up.rstCode !== 0) return; // a reset, handled on 'close'
    ended = true;
    if (responded && !res.writableEnded) res.end();
  });
  up.once('close', () => {
    if (ended) return;
    if (!responded && !hasBody && attempt < MAX_REFUSED_RETRIES && !res.destroyed && isRefused(up, errorCode)) {
      // Never processed upstream (and no body to replay): try a fresh session.
      ended = true;
      timer?.cancel();
      forwardH1ToH2(ctx, settings, req, res, ex, headers, ep, cluster, timeoutMs, attempt + 1);
      return;
    }
    if (!responded) {
      const never = conn.state === 'failed' || conn.state === 'connecting';
      h1LocalReply(res, ex, never ? 'upstream_connect_failure' : 'upstream_reset', never ? conn.lastError : undefined);
    } else res.destroy();
  });
  const timer =
    timeoutMs > 0
      ? ctx.clock.setTimer(timeoutMs, () => {
          resetStream(up, CANCEL);
          ended = true;
          if (!responded) h1LocalReply(res, ex, 'upstream_timeout');
          else res.destroy();
        })
      : undefined;
  if (hasBody) {
    pumpBody(
      req,
      ex,
      settings.maxRequestBodyBytes,
      up,
      () => {
        ended = true;
        resetStream(up, CANCEL);
        res.shouldKeepAlive = false;
        h1LocalReply(res, ex, 'request_too_large');
      },
    );
  }
  res.once('close', () => {
    timer?.cancel();
    if (!ended) resetStream(up, CANCEL);
  });
}

function noop(): void {}

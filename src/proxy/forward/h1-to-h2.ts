import http2, { type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { ProxyContext } from '../context.js';
import type { H1Downstream } from '../downstream/h1-downstream.js';
import { isRefused, resetStream } from '../http/h2-reset.js';
import { copyResponseHeaders } from '../http/headers.js';
import { localReply } from '../downstream/local-reply.js';
import { pumpBody } from './h1-body.js';
import type { UpstreamTarget } from './upstream-target.js';

const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM;
const CANCEL = http2.constants.NGHTTP2_CANCEL;
/** Bodyless requests refused upstream are replayed at most this often. */
const MAX_REFUSED_RETRIES = 4;

/**
 * HTTP/1.1 to an HTTP/2 upstream, as a stream of the endpoint's session. A
 * bodyless request the upstream refused (never processed) is retried on a
 * fresh session, bounded.
 */
export function forwardH1ToH2(ctx: ProxyContext, ds: H1Downstream, t: UpstreamTarget, headers: OutgoingHttpHeaders, attempt: number): void {
  const { ep, cluster } = t;
  const ex = ds.ex;
  const req = ds.req;
  const res = ds.res;
  const chain = ds.chain;
  const respData = chain !== undefined && chain.hasResponseData;
  const conn = ctx.h2.get(ep, cluster.connectTimeoutMs, cluster.idleTimeoutMs, cluster.upstreamTls);
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  let up: ClientHttp2Stream;
  try {
    up = conn.session.request(headers, { endStream: !hasBody });
  } catch (err) {
    if (attempt < MAX_REFUSED_RETRIES) return forwardH1ToH2(ctx, ds, t, headers, attempt + 1);
    return localReply(ds, 'upstream_connect_failure', (err as Error).message);
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
    ds.respond(ex.status, out);
    if ((flags & END_STREAM) !== 0) {
      ended = true;
      ds.end();
    }
  });
  up.on('data', (c: Buffer) => {
    ex.bytes_out += c.length;
    if (!(respData ? ds.write(c) : res.write(c))) up.pause();
  });
  if (respData) ds.onDrain(() => up.resume());
  else res.on('drain', () => up.resume());
  let trailers: Record<string, string | string[]> | undefined;
  up.once('trailers', (tr: IncomingHttpHeaders) => {
    trailers = copyResponseHeaders(tr, {});
  });
  up.once('end', () => {
    // A reset, or a session cut off before any response (its streams end with rstCode 0): handled on 'close'.
    if (!responded || (up.rstCode !== undefined && up.rstCode !== 0)) return;
    ended = true;
    if (responded && !res.writableEnded) ds.end(undefined, trailers);
  });
  up.once('close', () => {
    if (ended) return;
    if (!responded && !hasBody && attempt < MAX_REFUSED_RETRIES && !res.destroyed && isRefused(up, errorCode)) {
      // Never processed upstream (and no body to replay): try a fresh session.
      ended = true;
      forwardH1ToH2(ctx, ds, t, headers, attempt + 1);
      return;
    }
    if (!responded) {
      const never = conn.state === 'failed' || conn.state === 'connecting';
      localReply(ds, never ? 'upstream_connect_failure' : 'upstream_reset', never ? conn.lastError : undefined);
    } else res.destroy();
  });
  if (hasBody) {
    pumpBody(ds, t.settings.maxRequestBodyBytes, up, () => {
      ended = true;
      resetStream(up, CANCEL);
      res.shouldKeepAlive = false;
      localReply(ds, 'request_too_large');
    });
  }
  ds.scope.onAbort((reason) => {
    if (ended) return;
    if (reason === 'downstream_reset') return resetStream(up, CANCEL);
    resetStream(up, CANCEL);
    ended = true;
    if (!responded) localReply(ds, 'upstream_timeout');
    else res.destroy();
  });
}

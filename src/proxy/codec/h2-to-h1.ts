import http2, { type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { ProxyContext } from '../context.js';
import type { Exchange } from '../exchange.js';
import { copyResponseHeaders } from '../headers.js';
import { h2LocalReply } from '../local-reply.js';
import type { ListenerSettings } from '../state.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import type { EndpointAddress } from '../upstream/endpoint.js';
import { h1UpstreamRequest, trailersOf } from './h1-upstream.js';

const CANCEL = http2.constants.NGHTTP2_CANCEL;

/** Plain HTTP from an HTTP/2 client to an HTTP/1.1 upstream. */
export function forwardH2ToH1(
  ctx: ProxyContext,
  settings: ListenerSettings,
  stream: ServerHttp2Stream,
  ex: Exchange,
  h2Headers: OutgoingHttpHeaders,
  endStream: boolean,
  ep: EndpointAddress,
  cluster: ClusterRuntime,
  timeoutMs: number,
): void {
  const headers: Record<string, string | string[]> = {};
  for (const k in h2Headers) {
    if (k.charCodeAt(0) !== 58 && k !== 'te') headers[k] = h2Headers[k] as string;
  }
  headers['host'] = h2Headers[':authority'] as string;
  let responded = false;
  let done = false;
  const req = h1UpstreamRequest(
    ctx,
    ep,
    cluster,
    h2Headers[':method'] as string,
    h2Headers[':path'] as string,
    headers,
    {
      onResponse(res) {
        if (stream.closed) return res.destroy();
        responded = true;
        ex.status = res.statusCode ?? 502;
        const out = copyResponseHeaders(res.headers, { ':status': String(ex.status) });
        stream.respond(out as OutgoingHttpHeaders, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers(trailersOf(res) ?? {}));
        res.on('data', (c: Buffer) => {
          ex.bytes_out += c.length;
          if (!stream.write(c)) res.pause();
        });
        stream.on('drain', () => res.resume());
        res.once('end', () => {
          done = true;
          stream.end();
        });
        res.once('aborted', () => {
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        });
      },
      onError(err, connected) {
        if (responded) {
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
          return;
        }
        h2LocalReply(stream, ex, connected ? 'upstream_reset' : 'upstream_connect_failure', false, err.message);
      },
    },
  );
  const timer =
    timeoutMs > 0
      ? ctx.clock.setTimer(timeoutMs, () => {
          req.destroy();
          if (!responded) h2LocalReply(stream, ex, 'upstream_timeout', false);
          else if (!stream.closed) stream.close(CANCEL);
        })
      : undefined;
  const maxBody = settings.maxRequestBodyBytes;
  if (endStream) req.end();
  else {
    stream.on('data', (c: Buffer) => {
      ex.bytes_in += c.length;
      if (maxBody > 0 && ex.bytes_in > maxBody) {
        req.destroy();
        h2LocalReply(stream, ex, 'request_too_large', false);
        return;
      }
      if (!req.write(c)) stream.pause();
    });
    req.on('drain', () => stream.resume());
    stream.once('end', () => req.end());
  }
  stream.once('close', () => {
    timer?.cancel();
    if (!done) req.destroy();
  });
}

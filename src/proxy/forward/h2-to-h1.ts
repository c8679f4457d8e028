import http2, { type OutgoingHttpHeaders } from 'node:http2';
import type { ProxyContext } from '../context.js';
import type { H2Downstream } from '../downstream/h2-downstream.js';
import { copyResponseHeaders } from '../http/headers.js';
import { localReply } from '../downstream/local-reply.js';
import { h1UpstreamRequest, trailersOf } from './h1-upstream.js';
import type { UpstreamTarget } from './upstream-target.js';

const CANCEL = http2.constants.NGHTTP2_CANCEL;
const INTERNAL_ERROR = http2.constants.NGHTTP2_INTERNAL_ERROR;

/** Plain HTTP from an HTTP/2 client to an HTTP/1.1 upstream. */
export function forwardH2ToH1(ctx: ProxyContext, ds: H2Downstream, t: UpstreamTarget, h2Headers: OutgoingHttpHeaders): void {
  const ex = ds.ex;
  const stream = ds.stream;
  const chain = ds.chain;
  const reqData = chain !== undefined && chain.hasRequestData;
  const respData = chain !== undefined && chain.hasResponseData;
  const headers: Record<string, string | string[]> = {};
  for (const k in h2Headers) {
    if (k.charCodeAt(0) !== 58 && k !== 'te') headers[k] = h2Headers[k] as string;
  }
  headers['host'] = h2Headers[':authority'] as string;
  let responded = false;
  let done = false;
  const req = h1UpstreamRequest(ctx, t.ep, t.cluster, ds.method, t.path, headers, {
    onResponse(res) {
      if (stream.closed) return res.destroy();
      responded = true;
      ex.status = res.statusCode ?? 502;
      const out = copyResponseHeaders(res.headers, {});
      ds.respond(ex.status, out as OutgoingHttpHeaders, true);
      res.on('data', (c: Buffer) => {
        ex.bytes_out += c.length;
        if (!(respData ? ds.write(c) : stream.write(c))) res.pause();
      });
      if (respData) ds.onDrain(() => res.resume());
      else stream.on('drain', () => res.resume());
      res.once('end', () => {
        done = true;
        ds.end(undefined, trailersOf(res) ?? {});
      });
      res.once('aborted', () => {
        if (!stream.closed) stream.close(INTERNAL_ERROR);
      });
    },
    onError(err, connected) {
      if (responded) {
        if (!stream.closed) stream.close(INTERNAL_ERROR);
        return;
      }
      localReply(ds, connected ? 'upstream_reset' : 'upstream_connect_failure', err.message);
    },
  });
  const maxBody = t.settings.maxRequestBodyBytes;
  if (ds.endAtHeaders) req.end();
  else {
    const body = ds.requestBody;
    body.on('data', (c: Buffer) => {
      ex.bytes_in += c.length;
      if (maxBody > 0 && ex.bytes_in > maxBody) {
        req.destroy();
        localReply(ds, 'request_too_large');
        return;
      }
      if (reqData) c = chain.requestData(ds, c);
      if (!req.write(c)) body.pause();
    });
    req.on('drain', () => body.resume());
    body.once('end', () => req.end());
  }
  ds.scope.onAbort((reason) => {
    if (reason === 'downstream_reset') {
      if (!done) req.destroy();
      return;
    }
    req.destroy();
    if (!responded) localReply(ds, reason);
    else if (!stream.closed) stream.close(CANCEL);
  });
}

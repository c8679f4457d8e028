import type { ProxyContext } from '../context.js';
import type { H1Downstream } from '../downstream/h1-downstream.js';
import { copyResponseHeaders } from '../http/headers.js';
import { localReply } from '../downstream/local-reply.js';
import { pumpBody } from './h1-body.js';
import { h1UpstreamRequest, trailersOf } from './h1-upstream.js';
import type { UpstreamTarget } from './upstream-target.js';

/**
 * HTTP/1.1 to an HTTP/1.1 upstream through the endpoint's keep-alive agent.
 * Bodies stream with pause/resume backpressure; nothing is buffered.
 */
export function forwardH1ToH1(ctx: ProxyContext, ds: H1Downstream, t: UpstreamTarget, headers: Record<string, string | string[]>): void {
  const ex = ds.ex;
  const res = ds.res;
  const chain = ds.chain;
  const respData = chain !== undefined && chain.hasResponseData;
  let responded = false;
  let done = false;
  const up = h1UpstreamRequest(ctx, t.ep, t.cluster, ds.method, t.path, headers, {
    onResponse(upRes) {
      responded = true;
      ex.status = upRes.statusCode ?? 502;
      const out = copyResponseHeaders(upRes.headers, {});
      if (ctx.lifecycle.draining) out['connection'] = 'close';
      ds.respond(ex.status, out, false, upRes.statusMessage);
      upRes.on('data', (c: Buffer) => {
        ex.bytes_out += c.length;
        // Through the chain's data filters and response encoder (Downstream.write) only when it has them.
        if (!(respData ? ds.write(c) : res.write(c))) upRes.pause();
      });
      if (respData) ds.onDrain(() => upRes.resume());
      else res.on('drain', () => upRes.resume());
      upRes.once('end', () => {
        done = true;
        ds.end(undefined, trailersOf(upRes));
      });
      upRes.once('aborted', () => res.destroy());
    },
    onError(err, connected) {
      if (responded) return void res.destroy();
      localReply(ds, connected ? 'upstream_reset' : 'upstream_connect_failure', err.message);
    },
  });
  pumpBody(ds, t.settings.maxRequestBodyBytes, up, () => {
    up.destroy();
    res.shouldKeepAlive = false;
    localReply(ds, 'request_too_large');
  });
  ds.scope.onAbort((reason) => {
    if (reason === 'downstream_reset') {
      if (!done) up.destroy();
      return;
    }
    up.destroy();
    if (!responded) localReply(ds, 'upstream_timeout');
    else res.destroy();
  });
}

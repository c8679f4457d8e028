import type { OutgoingHttpHeaders } from 'node:http2';
import { flagOf } from '../../../core/errors.js';
import type { Downstream } from '../../downstream/downstream.js';
import type { Transcoder } from '../../transcode/transcoder.js';
import type { FilterVerdict, HttpFilter } from '../filter.js';
import { CorsPolicy } from '../cors/cors-policy.js';

/**
 * The browser-origin rules of a transcoding route (`transcode.allowedOrigins`)
 * as a filter, compiled with the route's transcoder on the one CORS engine
 * (cors/cors-policy.ts) with the gRPC-Web / Connect preset:
 * - a CORS preflight (`OPTIONS` + `Access-Control-Request-Method` to an
 *   exposed `/<pkg.Service>/<Method>`) is answered here: 204 with the
 *   allowances, or 403 for an origin not on the list; it never reaches the
 *   transcoder or the upstream;
 * - a WebSocket bridged to a gRPC method from an Origin neither on the list
 *   nor the Host's own is refused with 403 (flag OR) before
 *   anything is dialled;
 * - gRPC-Web and Connect answers (whoever writes them: the dialect handler or
 *   a local reply) get the CORS response headers when the origin is allowed.
 * REST and gRPC pass-through answers are left alone.
 *
 * When the route's chain has a `cors` filter (configured, not disabled), that
 * filter owns CORS for the route (`withCors: false`): this one keeps only the
 * WebSocket Origin check, so a response never gets two sets of answers.
 */
export function transcodeCorsFilter(tr: Transcoder, withCors = true): HttpFilter {
  const origins = [...tr.settings.origins];
  // `*` here predates the cors filter: it reflects the origin with credentials (the cors filter refuses `*` + credentials).
  const cors = new CorsPolicy({ allowOrigins: origins, allowHeaders: ['*'], allowCredentials: true, grpcWebConnect: true, maxAgeSeconds: 7200 });
  const ws = new CorsPolicy({ allowOrigins: origins, sameOrigin: true });
  return {
    name: 'transcode_cors',
    onRequestHeaders(ds: Downstream): FilterVerdict {
      if (ds.kind === 'ws') {
        const origin = ds.headers.origin;
        if (ds.ex.protocol !== 'websocket-bridge' || typeof origin !== 'string' || origin === '' || ws.allows(origin, ds.headers)) return undefined;
        const body = `origin ${origin} is not allowed\n`;
        return { status: 403, headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) }, body, flag: flagOf('origin_not_allowed') };
      }
      if (!withCors || !isPreflight(tr, ds)) return undefined;
      const p = cors.preflight(ds.headers);
      return { status: p.status, headers: p.headers };
    },
    ...(withCors
      ? {
          onResponseHeaders(ds: Downstream, _status: number, headers: OutgoingHttpHeaders): void {
            const dialect = ds.ex.protocol;
            if ((dialect === 'grpc-web' || dialect === 'connect') && ds.method !== 'OPTIONS' && ds.headers.origin !== undefined) cors.decorate(ds.headers, headers);
          },
        }
      : {}),
  };
}

/** The transcoder's preflight rule (transcode/dispatch.ts `dialectOf`, its `cors-preflight` case). */
function isPreflight(tr: Transcoder, ds: Downstream): boolean {
  if (ds.method !== 'OPTIONS' || ds.headers['access-control-request-method'] === undefined) return false;
  if (String(ds.headers['content-type'] ?? '').toLowerCase().startsWith('application/grpc-web')) return false;
  const q = ds.target.indexOf('?');
  return tr.methods.has(q < 0 ? ds.target : ds.target.slice(0, q));
}

import type { DescMethod } from '@bufbuild/protobuf';
import type { IncomingHttpHeaders } from 'node:http2';
import { handleConnectStream, handleConnectUnary } from './connect/handler.js';
import { preflight } from './cors.js';
import { handleGrpcWeb } from './grpc-web/handler.js';
import { handleTranscode, type TranscodeTarget } from './handler.js';
import type { Transcoder } from './transcoder.js';
import { create } from '@bufbuild/protobuf';
import { StatusSchema } from '../../gen/google/rpc/status_pb.js';
import { writeError } from './response-writer.js';

export type Dialect = 'grpc-web' | 'connect' | 'connect-stream' | 'cors-preflight' | 'openapi' | 'rest';

/**
 * Which dialect a non-gRPC request to a transcoding route speaks (gRPC
 * itself, `application/grpc[+…|;…]` over HTTP/2, is passed through before
 * this; a WebSocket upgrade never gets here). In order:
 * 1. `content-type: application/grpc-web*` → gRPC-Web;
 * 2. the path is `/<pkg.Service>/<Method>` of an exposed service and
 *    - `OPTIONS` with `Access-Control-Request-Method` → CORS preflight,
 *    - `POST` with `application/connect+*` → Connect streaming,
 *    - `POST` with `application/json` or `application/proto`, or `GET` → Connect unary;
 * 3. `GET`/`HEAD` of the route's OpenAPI path (`/.well-known/openapi.json`
 *    unless configured) → the OpenAPI document;
 * 4. everything else → the REST bindings.
 * Pure, so the rule is tested on its own (test/unit/transcode/dispatch.test.ts).
 */
export function dialectOf(tr: Transcoder, method: string, target: string, headers: IncomingHttpHeaders): { dialect: Dialect; rpc: DescMethod | undefined } {
  const ct = String(headers['content-type'] ?? '').toLowerCase();
  const qi = target.indexOf('?');
  const rpc = tr.methods.get(qi < 0 ? target : target.slice(0, qi));
  if (ct.startsWith('application/grpc-web')) return { dialect: 'grpc-web', rpc };
  if (rpc) {
    if (method === 'OPTIONS' && headers['access-control-request-method'] !== undefined) return { dialect: 'cors-preflight', rpc };
    const base = ct.split(';')[0]!.trim();
    if (method === 'POST' && base.startsWith('application/connect+')) return { dialect: 'connect-stream', rpc };
    if (method === 'POST' && (base === 'application/json' || base === 'application/proto')) return { dialect: 'connect', rpc };
    if (method === 'GET') return { dialect: 'connect', rpc };
  }
  if ((method === 'GET' || method === 'HEAD') && tr.settings.openapiPath !== undefined && (qi < 0 ? target : target.slice(0, qi)) === tr.settings.openapiPath) {
    return { dialect: 'openapi', rpc: undefined };
  }
  return { dialect: 'rest', rpc: undefined };
}

/** Serves one non-gRPC request of a transcoding route in its dialect, labelling the exchange (`protocol`). */
export function serveTranscoded(t: TranscodeTarget): void {
  const { ds, ex } = t;
  if (t.tr.unavailable !== undefined) {
    ex.protocol = 'rest';
    ex.flags = 'UF';
    ds.body.resume();
    return writeError(ds, ex, t.tr, 503, create(StatusSchema, { code: 14, message: t.tr.unavailable }));
  }
  const d = dialectOf(t.tr, ds.method, ds.target, ds.headers);
  switch (d.dialect) {
    case 'grpc-web':
      ex.protocol = 'grpc-web';
      return handleGrpcWeb(t, d.rpc);
    case 'cors-preflight': {
      const acrh = String(ds.headers['access-control-request-headers'] ?? '').toLowerCase();
      ex.protocol = acrh.includes('x-grpc-web') ? 'grpc-web' : 'connect';
      const p = preflight(t.tr.settings, ds.headers);
      ex.status = p.status;
      ds.body.resume();
      ds.respond(p.status, p.headers, false);
      return ds.end();
    }
    case 'openapi': {
      ex.protocol = 'rest';
      ds.body.resume();
      let body: Buffer;
      try {
        body = t.tr.openapi();
      } catch (err) {
        ex.status = 500;
        ds.respond(500, { 'content-type': 'text/plain' }, false);
        return ds.end(`cannot generate the OpenAPI document: ${(err as Error).message}\n`);
      }
      ex.status = 200;
      ds.respond(200, { 'content-type': 'application/json', 'content-length': body.length, 'cache-control': 'no-cache', etag: `"${t.tr.version}"` }, false);
      return ds.method === 'HEAD' ? ds.end() : ds.end(body);
    }
    case 'connect':
      ex.protocol = 'connect';
      return handleConnectUnary(t, d.rpc!);
    case 'connect-stream':
      ex.protocol = 'connect';
      return handleConnectStream(t, d.rpc!);
    default:
      ex.protocol = 'rest';
      return handleTranscode(t);
  }
}

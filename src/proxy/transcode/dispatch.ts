import { flagOf } from '../../core/errors.js';
import type { DescMethod } from '@bufbuild/protobuf';
import type { IncomingHttpHeaders } from 'node:http2';
import { handleConnectStream, handleConnectUnary } from './connect/handler.js';
import { handleGrpcWeb } from './grpc-web/handler.js';
import { handleTranscode, type TranscodeTarget } from './handler.js';
import type { Transcoder } from './transcoder.js';
import { create } from '@bufbuild/protobuf';
import { StatusSchema } from '../../gen/google/rpc/status_pb.js';
import { writeError } from './response-writer.js';
import type { Downstream } from '../downstream/downstream.js';

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

/**
 * Labels one non-gRPC request of a transcoding route with its dialect (the
 * exchange's `protocol`) and returns it; the pipeline calls this before the
 * filters run (the browser-origin filter keys on it), then `serveTranscoded`.
 * A transcoder still waiting for reflected descriptors is `unavailable`.
 */
export type ServedDialect = Dialect | 'unavailable';

export function classifyTranscoded(tr: Transcoder, ds: Downstream): ServedDialect {
  const ex = ds.ex;
  if (tr.unavailable !== undefined) {
    ex.protocol = 'rest';
    return 'unavailable';
  }
  const d = dialectOf(tr, ds.method, ds.target, ds.headers).dialect;
  switch (d) {
    case 'grpc-web':
      ex.protocol = 'grpc-web';
      break;
    case 'cors-preflight':
      ex.protocol = String(ds.headers['access-control-request-headers'] ?? '').toLowerCase().includes('x-grpc-web') ? 'grpc-web' : 'connect';
      break;
    case 'connect':
    case 'connect-stream':
      ex.protocol = 'connect';
      break;
    default:
      ex.protocol = 'rest';
  }
  return d;
}

/**
 * Serves one non-gRPC request of a transcoding route in its dialect. CORS
 * preflights never get here: the route's browser-origin filter
 * (filters/transcode-cors) answers them; one that did (no such filter) is
 * treated as REST, which has no OPTIONS bindings and answers 405 or 404.
 */
export function serveTranscoded(t: TranscodeTarget, dialect: ServedDialect): void {
  const { ds, ex } = t;
  switch (dialect) {
    case 'unavailable':
      ex.flags = flagOf('upstream_connect_failure');
      ds.body.resume();
      return writeError(ds, ex, t.tr, 503, create(StatusSchema, { code: 14, message: t.tr.unavailable ?? 'unavailable' }));
    case 'grpc-web':
      return handleGrpcWeb(t, methodOf(t));
    case 'openapi': {
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
      return handleConnectUnary(t, methodOf(t)!);
    case 'connect-stream':
      return handleConnectStream(t, methodOf(t)!);
    default:
      return handleTranscode(t);
  }
}

function methodOf(t: TranscodeTarget): DescMethod | undefined {
  const q = t.ds.target.indexOf('?');
  return t.tr.methods.get(q < 0 ? t.ds.target : t.ds.target.slice(0, q));
}

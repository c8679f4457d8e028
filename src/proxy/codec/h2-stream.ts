import http2, {
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { parseGrpcTimeout } from '../../core/duration.js';
import { GrpcStatus } from '../../core/errors.js';
import type { ProxyContext } from '../context.js';
import { Exchange } from '../exchange.js';
import { copyRequestHeaders, encodeGrpcMessage, isGrpcContentType } from '../headers.js';
import type { ListenerViewRef } from '../listener-view.js';
import { h2LocalReply } from '../local-reply.js';
import { forwardH2ToH1 } from './h2-to-h1.js';
import { rewritePath } from './rewrite.js';
import { isRefused, resetStream } from './h2-reset.js';
import type { H2Connection } from '../upstream/h2-pool.js';
import type { Destination } from '../upstream/original-dst.js';
import { h2Downstream } from '../transcode/downstream.js';
import { serveTranscoded } from '../transcode/dispatch.js';

const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM;
const CANCEL = http2.constants.NGHTTP2_CANCEL;
const INTERNAL_ERROR = http2.constants.NGHTTP2_INTERNAL_ERROR;

/** Per-connection facts the stream handler needs, captured once per session. */
export interface H2ConnectionInfo {
  readonly clientAddress: string;
  readonly scheme: string;
  /** Where the connection was going before iptables redirected it (ORIGINAL_DST clusters). */
  readonly originalDst?: Destination | undefined;
}

/**
 * Handles one downstream HTTP/2 stream (gRPC or plain h2): route, pick an
 * endpoint, and forward at stream level without decoding gRPC messages.
 *
 * Ordering that matters:
 * - Response headers are relayed with waitForTrailers unless the upstream
 *   ended the stream with its headers (gRPC trailers-only), which is relayed
 *   as headers + END_STREAM so the status stays in the headers.
 * - Bytes move with explicit pause/resume on write() == false in both
 *   directions, so HTTP/2 flow control reaches from the slow side to the fast
 *   one and nothing is buffered without bound.
 * - The deadline (grpc-timeout or route timeout) cancels the upstream stream
 *   (RST_STREAM CANCEL) before answering DEADLINE_EXCEEDED downstream.
 */
export function onH2Stream(
  ctx: ProxyContext,
  ref: ListenerViewRef,
  conn: H2ConnectionInfo,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  flags: number,
): void {
  const view = ref.view;
  const settings = view.settings;
  const grpc = isGrpcContentType(headers['content-type']);
  const ex = new Exchange(ctx, settings, grpc ? 'grpc' : 'h2');
  const method = headers[':method'] ?? 'GET';
  const rawPath = headers[':path'] ?? '/';
  const authority = headers[':authority'] ?? headers['host'] ?? '';
  ex.method = method;
  ex.path = rawPath;
  ex.authority = authority;
  ex.captureHeaders(headers);
  stream.once('close', () => ex.finish());
  // Errors on a stream (client reset, protocol error) end in 'close'; without a listener they would throw.
  stream.on('error', noop);

  const q = rawPath.indexOf('?');
  const match = settings.routes?.match({
    host: authority,
    method,
    path: q < 0 ? rawPath : rawPath.slice(0, q),
    headers,
    isGrpc: grpc,
  });
  if (!match) {
    const doc = !grpc && (method === 'GET' || method === 'HEAD') && settings.openapi?.get(q < 0 ? rawPath : rawPath.slice(0, q));
    if (!doc) return h2LocalReply(stream, ex, 'no_route', grpc);
    ex.status = 200;
    stream.respond({ ':status': 200, 'content-type': 'application/json', 'content-length': doc.body.length, 'cache-control': 'no-cache', etag: doc.etag });
    return void (method === 'HEAD' ? stream.end() : stream.end(doc.body));
  }
  ex.route = match.route.name;
  const action = match.route.action;
  if (action.kind === 'direct') {
    ex.status = action.status;
    stream.respond({ ':status': action.status, 'content-type': 'text/plain; charset=utf-8' });
    stream.end(action.body);
    return;
  }
  ex.cluster = action.cluster;
  const cluster = view.state.clusters.get(action.cluster);
  if (!cluster) return h2LocalReply(stream, ex, 'no_cluster', grpc, action.cluster);
  const picked = ctx.originalDst.pick(cluster, { originalDst: conn.originalDst, authority, scheme: conn.scheme });
  if (!picked.ep) return h2LocalReply(stream, ex, picked.code, grpc, picked.detail);
  const ep = picked.ep;
  ex.upstream = ep.key;
  // gRPC callers of a transcoding route pass through unchanged; other dialects (gRPC-Web, Connect, REST) are told apart in transcode/dispatch.ts.
  const tr = !grpc && action.transcode && view.state.transcoders.get(action.transcode);
  if (tr) {
    const ds = h2Downstream(stream, headers);
    const host = action.hostRewrite || authority;
    return serveTranscoded({ ctx, tr, ds, ex, cluster, ep, routeTimeoutMs: action.timeoutMs, authority: host, clientAddress: conn.clientAddress, trustedHops: settings.trustedHops });
  }

  let timeoutMs = action.timeoutMs;
  let deadlineFromClient = false;
  const gt = headers['grpc-timeout'];
  if (gt !== undefined) {
    const ms = parseGrpcTimeout(gt as string);
    if (ms >= 0 && (timeoutMs === 0 || ms < timeoutMs)) {
      timeoutMs = ms;
      deadlineFromClient = true;
    }
  }

  const out: OutgoingHttpHeaders = {
    ':method': method,
    ':path': rewritePath(rawPath, match, action),
    ':authority': action.hostRewrite || authority,
    ':scheme': 'http',
  };
  ex.request_id = copyRequestHeaders(headers, out as Record<string, string>, {
    clientAddress: conn.clientAddress,
    scheme: conn.scheme,
    trustedHops: settings.trustedHops,
  });

  if (!cluster.usesH2(true)) {
    forwardH2ToH1(ctx, settings, stream, ex, out, (flags & END_STREAM) !== 0, ep, cluster, timeoutMs);
    return;
  }

  const endAtHeaders = (flags & END_STREAM) !== 0;
  let upConn = ctx.h2.get(ep, cluster.connectTimeoutMs, cluster.idleTimeoutMs);
  let up!: ClientHttp2Stream;
  let responded = false;
  let upEnded = false;
  let timedOut = false;
  let downEnded = endAtHeaders;
  let attempts = 0;
  let upErrorCode: string | undefined;
  let trailers: OutgoingHttpHeaders | undefined;
  const maxBody = grpc ? 0 : settings.maxRequestBodyBytes;
  // The request bytes sent so far, kept until the response starts so that a
  // stream the upstream refused (never processed: RFC 9113 §8.7) can be
  // replayed on a fresh session. Dropped once it outgrows REPLAY_MAX_BYTES.
  let replay: Buffer[] | undefined = [];
  let replayBytes = 0;

  /** Opens the upstream stream on the current session and replays what the client sent so far. */
  const open = (): boolean => {
    try {
      up = upConn.session.request(out, { endStream: endAtHeaders });
    } catch (err) {
      // The session went away between the pool lookup and now (GOAWAY): one more try on a new one.
      if (attempts++ === 0) {
        upConn = ctx.h2.get(ep, cluster.connectTimeoutMs, cluster.idleTimeoutMs);
        return open();
      }
      h2LocalReply(stream, ex, 'upstream_connect_failure', grpc, (err as Error).message);
      return false;
    }
    upErrorCode = undefined;
    up.on('error', (err: NodeJS.ErrnoException) => (upErrorCode = err.code));
    if (replay) for (const c of replay) up.write(c);
    if (downEnded && !endAtHeaders) up.end();
    attach(up, upConn);
    return true;
  };

  const timer =
    timeoutMs > 0
      ? ctx.clock.setTimer(timeoutMs, () => {
          timedOut = true;
          resetStream(up, CANCEL);
          const code = deadlineFromClient || grpc ? 'deadline_exceeded' : 'upstream_timeout';
          if (!responded) return h2LocalReply(stream, ex, code, grpc);
          if (grpc && !stream.closed) {
            // Headers are out: end the stream with our own status in the trailers.
            ex.flags = 'DE';
            trailers = { 'grpc-status': GrpcStatus.DEADLINE_EXCEEDED, 'grpc-message': 'deadline exceeded' };
            stream.end();
          } else if (!stream.closed) stream.close(CANCEL);
        })
      : undefined;

  // Downstream → upstream.
  stream.on('data', (chunk: Buffer) => {
    ex.bytes_in += chunk.length;
    if (maxBody > 0 && ex.bytes_in > maxBody) {
      resetStream(up, CANCEL);
      h2LocalReply(stream, ex, 'request_too_large', grpc);
      return;
    }
    if (replay !== undefined) {
      replayBytes += chunk.length;
      if (replayBytes <= REPLAY_MAX_BYTES) replay.push(chunk);
      else replay = undefined;
    }
    if (!up.write(chunk)) stream.pause();
  });
  stream.once('end', () => {
    downEnded = true;
    if (!up.closed && !up.writableEnded) up.end();
  });
  stream.on('drain', () => up.resume());
  stream.on('wantTrailers', () => {
    if (trailers !== undefined) {
      if (timedOut) ex.grpc_status = String(GrpcStatus.DEADLINE_EXCEEDED);
      stream.sendTrailers(trailers);
    } else stream.sendTrailers({});
  });

  /** Upstream → downstream, for one attempt. */
  const attach = (u: ClientHttp2Stream, conn: H2Connection): void => {
    u.on('drain', () => stream.resume());
    u.once('response', (h: IncomingHttpHeaders, f: number) => {
      if (timedOut || stream.closed) return;
      responded = true;
      replay = undefined;
      const status = (h[':status'] as unknown as number) ?? 200;
      ex.status = status;
      if ((f & END_STREAM) !== 0) {
        // Trailers-only (gRPC error without a body) or an empty response.
        upEnded = true;
        const gs = h['grpc-status'];
        if (gs !== undefined) ex.grpc_status = gs as string;
        stream.respond(h as OutgoingHttpHeaders, { endStream: true });
        return;
      }
      stream.respond(h as OutgoingHttpHeaders, { waitForTrailers: true });
    });
    u.on('data', (chunk: Buffer) => {
      if (timedOut) return;
      ex.bytes_out += chunk.length;
      if (!stream.write(chunk)) u.pause();
    });
    u.once('trailers', (t: IncomingHttpHeaders) => {
      trailers = t as OutgoingHttpHeaders;
      const gs = t['grpc-status'];
      if (gs !== undefined) ex.grpc_status = gs as string;
    });
    u.once('end', () => {
      // Node also ends the readable side when the stream is reset (with rstCode
      // already set): that is not a clean end and must not look like one.
      if (u.rstCode !== undefined && u.rstCode !== 0) return;
      upEnded = true;
      if (!timedOut && !stream.closed && responded) stream.end();
    });
    u.once('close', () => {
      if (timedOut || u !== up) return;
      if (!responded) {
        if (stream.closed) return;
        if (replay !== undefined && attempts < MAX_REFUSED_RETRIES && isRefused(u, upErrorCode)) {
          attempts++;
          upConn = ctx.h2.get(ep, cluster.connectTimeoutMs, cluster.idleTimeoutMs);
          open();
          return;
        }
        const never = conn.state === 'failed' || conn.state === 'connecting';
        h2LocalReply(
          stream,
          ex,
          never ? 'upstream_connect_failure' : 'upstream_reset',
          grpc,
          never ? conn.lastError : `rst ${u.rstCode}`,
        );
      } else if (!upEnded && !stream.closed) {
        // Reset mid-response: pass the reset down.
        ex.flags = 'UR';
        resetStream(stream, u.rstCode || INTERNAL_ERROR);
      }
    });
  };

  if (!open()) return;

  stream.once('close', () => {
    timer?.cancel();
    if (!up.closed && !upEnded) {
      // Client went away (or we reset it): cancel upstream.
      if (!responded && ex.flags === undefined) ex.flags = 'DC';
      resetStream(up, CANCEL);
    }
  });
}

/** Bytes of request body kept for a replay after REFUSED_STREAM; a unary gRPC call fits easily. */
const REPLAY_MAX_BYTES = 64 * 1024;
// Refused streams were never processed, so retrying costs a round trip only;
// the bound stops a backend that refuses everything from looping us.
const MAX_REFUSED_RETRIES = 4;
function noop(): void {}

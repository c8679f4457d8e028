import http2, { type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { flagOf, GrpcStatus } from '../../core/errors.js';
import type { ProxyContext } from '../context.js';
import type { AbortReason } from '../downstream/downstream.js';
import type { H2Downstream } from '../downstream/h2-downstream.js';
import { isRefused, resetStream } from '../http/h2-reset.js';
import { localReply } from '../downstream/local-reply.js';
import type { H2Connection } from '../upstream/h2-pool.js';
import type { UpstreamTarget } from './upstream-target.js';

const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM;
const CANCEL = http2.constants.NGHTTP2_CANCEL;
const INTERNAL_ERROR = http2.constants.NGHTTP2_INTERNAL_ERROR;

/**
 * HTTP/2 (gRPC or plain h2) to an HTTP/2 upstream, relayed at stream level
 * without decoding gRPC messages.
 *
 * Ordering that matters:
 * - Response headers are relayed with waitForTrailers unless the upstream
 *   ended the stream with its headers (gRPC trailers-only), which is relayed
 *   as headers + END_STREAM so the status stays in the headers.
 * - Bytes move with explicit pause/resume on write() == false in both
 *   directions, so HTTP/2 flow control reaches from the slow side to the fast
 *   one and nothing is buffered without bound.
 * - A deadline on the exchange's scope cancels the upstream stream
 *   (RST_STREAM CANCEL) before answering DEADLINE_EXCEEDED (or 504) downstream.
 * - A stream the upstream refused (never processed: RFC 9113 §8.7) is replayed
 *   on a fresh session, bounded, with the request bytes sent so far.
 */
export function forwardH2ToH2(ctx: ProxyContext, ds: H2Downstream, t: UpstreamTarget, out: OutgoingHttpHeaders): void {
  const { cluster, ep } = t;
  const ex = ds.ex;
  const stream = ds.stream;
  // Reset by the client while the pipeline ran (rapid reset): no upstream stream for it.
  if (stream.closed || stream.destroyed || stream.rstCode) return void ctx.metrics.earlyResets.inc({ listener: t.settings.name, stage: 'before_upstream' });
  const grpc = ds.grpc;
  const endAtHeaders = ds.endAtHeaders;
  const chain = ds.chain;
  const reqData = chain !== undefined && chain.hasRequestData;
  const respData = chain !== undefined && chain.hasResponseData;
  let upConn = ctx.h2.get(ep, cluster.connectTimeoutMs, cluster.idleTimeoutMs, cluster.upstreamTls);
  let up!: ClientHttp2Stream;
  let responded = false;
  let upEnded = false;
  let timedOut = false;
  let downEnded = endAtHeaders;
  let attempts = 0;
  let upErrorCode: string | undefined;
  let trailers: OutgoingHttpHeaders | undefined;
  const maxBody = grpc ? 0 : t.settings.maxRequestBodyBytes;
  // The request bytes sent so far, kept until the response starts so that a
  // refused stream can be replayed. Dropped once it outgrows REPLAY_MAX_BYTES.
  let replay: Buffer[] | undefined = [];
  let replayBytes = 0;

  /** Opens the upstream stream on the current session and replays what the client sent so far. */
  const open = (): boolean => {
    try {
      up = upConn.session.request(out, { endStream: endAtHeaders });
    } catch (err) {
      // The session went away between the pool lookup and now (GOAWAY): one more try on a new one.
      if (attempts++ === 0) {
        upConn = ctx.h2.get(ep, cluster.connectTimeoutMs, cluster.idleTimeoutMs, cluster.upstreamTls);
        return open();
      }
      localReply(ds, 'upstream_connect_failure', (err as Error).message);
      return false;
    }
    upErrorCode = undefined;
    up.on('error', (err: NodeJS.ErrnoException) => (upErrorCode = err.code));
    if (replay) for (const c of replay) up.write(c);
    if (downEnded && !endAtHeaders) up.end();
    attach(up, upConn);
    return true;
  };

  const onAbort = (reason: AbortReason): void => {
    if (reason === 'downstream_reset') {
      // Client went away (or we reset it): cancel upstream.
      if (!up.closed && !upEnded) {
        if (!responded && ex.flags === undefined) ex.flags = flagOf('downstream_reset');
        resetStream(up, CANCEL);
      }
      return;
    }
    timedOut = true;
    resetStream(up, CANCEL);
    if (!responded) return localReply(ds, reason);
    if (grpc && !stream.closed) {
      // Headers are out: end the stream with our own status in the trailers.
      ex.flags = flagOf('deadline_exceeded');
      ex.grpc_status = String(GrpcStatus.DEADLINE_EXCEEDED);
      ds.end(undefined, { 'grpc-status': GrpcStatus.DEADLINE_EXCEEDED, 'grpc-message': 'deadline exceeded' });
    } else if (!stream.closed) stream.close(CANCEL);
  };

  // Downstream → upstream (the request body: the stream's, or a filter's decoded copy).
  const body = ds.requestBody;
  body.on('data', (chunk: Buffer) => {
    ex.bytes_in += chunk.length;
    if (maxBody > 0 && ex.bytes_in > maxBody) {
      resetStream(up, CANCEL);
      localReply(ds, 'request_too_large');
      return;
    }
    if (reqData) chunk = chain.requestData(ds, chunk);
    if (replay !== undefined) {
      replayBytes += chunk.length;
      if (replayBytes <= REPLAY_MAX_BYTES) replay.push(chunk);
      else replay = undefined;
    }
    if (!up.write(chunk)) body.pause();
  });
  body.once('end', () => {
    downEnded = true;
    if (!up.closed && !up.writableEnded) up.end();
  });
  if (respData) ds.onDrain(() => up.resume());
  else stream.on('drain', () => up.resume());

  /** Upstream → downstream, for one attempt. */
  const attach = (u: ClientHttp2Stream, conn: H2Connection): void => {
    u.on('drain', () => body.resume());
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
        ds.respondEnd(status, h as OutgoingHttpHeaders);
        return;
      }
      ds.respond(status, h as OutgoingHttpHeaders, true);
    });
    u.on('data', (chunk: Buffer) => {
      if (timedOut) return;
      ex.bytes_out += chunk.length;
      if (!(respData ? ds.write(chunk) : stream.write(chunk))) u.pause();
    });
    u.once('trailers', (tr: IncomingHttpHeaders) => {
      trailers = tr as OutgoingHttpHeaders;
      const gs = tr['grpc-status'];
      if (gs !== undefined) ex.grpc_status = gs as string;
    });
    u.once('end', () => {
      // Node also ends the readable side when the stream is reset (with rstCode
      // already set): that is not a clean end and must not look like one.
      if (u.rstCode !== undefined && u.rstCode !== 0) return;
      upEnded = true;
      if (!timedOut && !stream.closed && responded) ds.end(undefined, trailers ?? {});
    });
    u.once('close', () => {
      if (timedOut || u !== up) return;
      if (!responded) {
        if (stream.closed) return;
        if (replay !== undefined && attempts < MAX_REFUSED_RETRIES && isRefused(u, upErrorCode)) {
          attempts++;
          upConn = ctx.h2.get(ep, cluster.connectTimeoutMs, cluster.idleTimeoutMs, cluster.upstreamTls);
          open();
          return;
        }
        const never = conn.state === 'failed' || conn.state === 'connecting';
        localReply(ds, never ? 'upstream_connect_failure' : 'upstream_reset', never ? conn.lastError : `rst ${u.rstCode}`);
      } else if (!upEnded && !stream.closed) {
        // Reset mid-response: pass the reset down.
        ex.flags = flagOf('upstream_reset');
        resetStream(stream, u.rstCode || INTERNAL_ERROR);
      }
    });
  };

  if (!open()) return;
  ds.scope.onAbort(onAbort);
}

/** Bytes of request body kept for a replay after REFUSED_STREAM; a unary gRPC call fits easily. */
const REPLAY_MAX_BYTES = 64 * 1024;
// Refused streams were never processed, so retrying costs a round trip only;
// the bound stops a backend that refuses everything from looping us.
const MAX_REFUSED_RETRIES = 4;

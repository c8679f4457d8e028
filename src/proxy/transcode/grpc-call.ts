import http2, { type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { AbortScope } from '../../core/abort-scope.js';
import { GrpcStatus } from '../../core/errors.js';
import type { AbortReason } from '../downstream/downstream.js';
import type { ProxyContext } from '../context.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import type { EndpointAddress } from '../upstream/endpoint.js';
import { resetStream } from '../http/h2-reset.js';
import { encodeFrame, FrameReader } from '../../core/grpc-framing.js';

const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM;
const CANCEL = http2.constants.NGHTTP2_CANCEL;

/**
 * How a call ended. `protocolError` marks an upstream answer that is not valid
 * gRPC (no grpc-status, a non-200 status, a compressed frame we never asked
 * for): the REST side answers 502 for those, since the client deserves to know
 * the backend, not the request, was at fault.
 */
export interface CallEnd {
  readonly code: number;
  readonly message: string;
  readonly details: Uint8Array | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly trailers: IncomingHttpHeaders;
  readonly protocolError: boolean;
  /** The call never reached the backend (connect failure, local cancel before send). */
  readonly local: boolean;
}

export interface CallHandlers {
  onHeaders(h: IncomingHttpHeaders): void;
  /** Return false to pause the upstream until resume(). */
  onMessage(bytes: Buffer): boolean;
  onEnd(end: CallEnd): void;
}

/**
 * One gRPC call over the shared upstream HTTP/2 session: 5-byte framing
 * in both directions, deadline as grpc-timeout plus a local timer that resets
 * the stream with CANCEL, and the status taken from trailers (or the headers
 * of a trailers-only answer). States: open → (half-closed) → ended; onEnd
 * fires exactly once.
 */
export class GrpcCall {
  private readonly frames = new FrameReader();
  private ended = false;
  private headers: IncomingHttpHeaders = {};
  private trailers: IncomingHttpHeaders | undefined;
  private responded = false;

  constructor(
    ctx: ProxyContext,
    cluster: ClusterRuntime,
    ep: EndpointAddress,
    headers: OutgoingHttpHeaders,
    timeoutMs: number,
    private readonly h: CallHandlers,
    /**
     * The exchange's cancellation: the call's deadline is armed on it, and
     * it ends the call when the exchange aborts (client gone: CANCELLED;
     * a deadline: DEADLINE_EXCEEDED). Calls of our own (reflection) get one.
     */
    scope?: AbortScope<AbortReason>,
  ) {
    if (scope === undefined) scope = this.ownScope = new AbortScope();
    const conn = ctx.h2.get(ep, cluster.connectTimeoutMs, cluster.idleTimeoutMs, cluster.upstreamTls);
    let stream: ClientHttp2Stream;
    try {
      stream = conn.session.request(
        { ...headers, ':method': 'POST', ':scheme': 'http', 'content-type': 'application/grpc', te: 'trailers' },
        { endStream: false },
      );
    } catch (err) {
      this.stream = undefined;
      queueMicrotask(() => this.finish(GrpcStatus.UNAVAILABLE, `upstream connect error: ${(err as Error).message}`, { local: true }));
      return;
    }
    this.stream = stream;
    stream.on('error', () => {});
    stream.once('response', (rh: IncomingHttpHeaders, flags: number) => {
      this.responded = true;
      this.headers = rh;
      const status = Number(rh[':status']);
      if (status !== 200) {
        this.finishFromMeta(rh, `upstream answered HTTP ${status}`);
        resetStream(stream, CANCEL);
        return;
      }
      if ((flags & END_STREAM) !== 0) return this.finishFromMeta(rh); // trailers-only
      h.onHeaders(rh);
    });
    stream.on('data', (c: Buffer) => this.onData(c));
    stream.once('trailers', (t: IncomingHttpHeaders) => (this.trailers = t));
    stream.once('close', () => {
      if (this.ended) return;
      if (this.trailers) return this.finishFromMeta(this.trailers);
      if (!this.responded) {
        const never = conn.state === 'failed' || conn.state === 'connecting';
        return this.finish(GrpcStatus.UNAVAILABLE, never ? `upstream connect error: ${conn.lastError ?? 'closed'}` : 'upstream reset', {
          local: never,
        });
      }
      // A clean end without trailers is a broken gRPC server, not a network failure.
      if (!stream.rstCode) return this.finish(GrpcStatus.INTERNAL, 'upstream ended the call without grpc-status', { protocolError: true });
      this.finish(GrpcStatus.UNAVAILABLE, `upstream reset (code ${stream.rstCode})`, {});
    });
    // Last, so an exchange that is already over ends a call that is fully set up.
    scope.deadline(ctx.clock, timeoutMs, 'deadline_exceeded');
    scope.onAbort((reason) => (reason === 'downstream_reset' ? this.cancel('client went away') : this.expire()));
  }

  /** The deadline passed: reset upstream, report DEADLINE_EXCEEDED. */
  private expire(): void {
    if (this.ended) return;
    if (this.stream && !this.stream.destroyed) resetStream(this.stream, CANCEL);
    this.finish(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded', {});
  }

  private readonly stream: ClientHttp2Stream | undefined;
  /** The scope this call made for itself (no exchange): disposed when the call ends. */
  private ownScope: AbortScope<AbortReason> | undefined;

  /** Sends one message; false means wait for onDrain. */
  send(msg: Uint8Array): boolean {
    if (!this.stream || this.ended) return true;
    return this.stream.write(encodeFrame(0, msg));
  }

  onDrain(fn: () => void): void {
    this.stream?.on('drain', fn);
  }

  halfClose(): void {
    if (this.stream && !this.ended) this.stream.end();
  }

  pause(): void {
    this.stream?.pause();
  }

  resume(): void {
    this.stream?.resume();
  }

  /** The client went away or the request was rejected midway: reset upstream, report CANCELLED. */
  cancel(message = 'cancelled'): void {
    if (this.ended) return;
    if (this.stream && !this.stream.destroyed) resetStream(this.stream, CANCEL);
    this.finish(GrpcStatus.CANCELLED, message, {});
  }

  private onData(c: Buffer): void {
    this.frames.each(c, (f) => {
      if (this.ended) return false;
      if (f.flags !== 0) {
        if (this.stream) resetStream(this.stream, CANCEL);
        this.finish(GrpcStatus.INTERNAL, 'upstream sent a compressed message without being asked to', { protocolError: true });
        return false;
      }
      if (!this.h.onMessage(f.data)) this.stream?.pause();
      return true;
    });
  }

  private finishFromMeta(meta: IncomingHttpHeaders, httpProblem?: string): void {
    const raw = meta['grpc-status'];
    const code = raw === undefined ? NaN : Number(raw);
    if (!Number.isInteger(code) || code < 0 || code > 16) {
      return this.finish(GrpcStatus.INTERNAL, httpProblem ?? 'upstream answered without a valid grpc-status', { protocolError: true });
    }
    const msgRaw = meta['grpc-message'];
    let message = typeof msgRaw === 'string' ? msgRaw : '';
    try {
      message = decodeURIComponent(message);
    } catch {
      // Not percent-encoded as the spec asks: keep the bytes as sent.
    }
    const det = meta['grpc-status-details-bin'];
    const details = typeof det === 'string' ? Buffer.from(det, 'base64') : undefined;
    this.finish(code, message, { details, trailers: meta });
  }

  private finish(
    code: number,
    message: string,
    o: { details?: Uint8Array | undefined; trailers?: IncomingHttpHeaders; protocolError?: boolean; local?: boolean },
  ): void {
    if (this.ended) return;
    this.ended = true;
    this.ownScope?.dispose();
    this.h.onEnd({
      code,
      message,
      details: o.details,
      headers: this.headers,
      trailers: o.trailers ?? {},
      protocolError: o.protocolError ?? false,
      local: o.local ?? false,
    });
  }
}

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { AbortScope } from '../../core/abort-scope.js';
import { formatGrpcTimeout } from '../../core/duration.js';
import { flagOf, GrpcStatus } from '../../core/errors.js';
import type { AbortReason } from '../downstream/downstream.js';
import type { Exchange } from '../http/exchange.js';
import type { ProxyContext } from '../context.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import type { EndpointAddress } from '../upstream/endpoint.js';
import type { UpstreamAttempt } from '../upstream/attempt.js';
import { H2Call } from '../upstream/calls/h2-call.js';
import type { CallEvents, CallFailure, UpstreamCall, UpstreamHead } from '../upstream/calls/upstream-call.js';
import type { PickInfo } from '../upstream/lb/picker.js';
import { AttemptRunner, type RunnerHost, type RunnerMark } from '../upstream/retry/attempt-runner.js';
import type { RunnerPlan } from '../upstream/retry/retry-policy.js';
import { encodeFrame, FrameReader } from '../../core/grpc-framing.js';
import { gunzipSync, inflateSync } from 'node:zlib';

/** The message encodings we ask backends for (besides identity), and decode. */
const ACCEPTED_ENCODINGS = 'gzip, deflate';
/** A compressed message decodes to at most this much (a zip bomb from a backend stops here). */
const MAX_DECODED_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * A compressed gRPC message (flag 1) in the response's `grpc-encoding`:
 * gzip, or deflate (zlib format, as gRPC's "deflate" is). A string: why it
 * cannot be read (the call fails INTERNAL, a protocol error of the backend).
 */
function decodeMessage(encoding: string | string[] | undefined, data: Buffer): Buffer | string {
  const enc = typeof encoding === 'string' ? encoding.trim().toLowerCase() : '';
  try {
    if (enc === 'gzip') return gunzipSync(data, { maxOutputLength: MAX_DECODED_MESSAGE_BYTES });
    if (enc === 'deflate') return inflateSync(data, { maxOutputLength: MAX_DECODED_MESSAGE_BYTES });
  } catch (err) {
    return `upstream sent a ${enc} message that does not decode: ${(err as Error).message}`;
  }
  return enc === '' || enc === 'identity' ? 'upstream sent a compressed message without a grpc-encoding' : `upstream sent a message in ${enc}, which we did not ask for`;
}

/** Request bytes kept (no retry plan) to replay a stream the upstream refused. */
const REPLAY_MAX_BYTES = 64 * 1024;

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
  /** Retries were wanted and used up (exhausted, flag URX) or refused by a limit (overflow, flag UO). */
  readonly retries?: RunnerMark;
  /** Upstream attempts made (retries, hedges, refused-stream replays included). */
  readonly attempts: number;
  /** The endpoint of the answer's attempt (or of the last one). */
  readonly endpoint: string | undefined;
}

export interface CallHandlers {
  onHeaders(h: IncomingHttpHeaders): void;
  /** Return false to pause the upstream until resume(). */
  onMessage(bytes: Buffer): boolean;
  onEnd(end: CallEnd): void;
}

/** Further attempts of a call: how the first pick was made, and the route's plan. */
export interface CallRetries {
  readonly pickInfo: PickInfo | undefined;
  readonly plan: RunnerPlan | undefined;
  /** The exchange the call serves (the attempt seam gets it). */
  readonly exchange?: Exchange | undefined;
  /** The route's mirror: starts a copy of the call from its headers (pipeline/mirror.ts: a forward/shadow.ts Shadow). */
  readonly mirror?: ((headers: Readonly<Record<string, unknown>>) => MirrorCopy) | undefined;
}

/** A mirrored copy of a call: fed the same request frames; its answer and failures never reach the call. */
export interface MirrorCopy {
  write(frame: Buffer): void;
  end(): void;
  /** The call ended (or was cancelled): a copy without its whole request is dropped. */
  requestGone(): void;
}

/**
 * One gRPC call over the shared upstream HTTP/2 sessions: 5-byte framing
 * in both directions, deadline as grpc-timeout plus a local timer that resets
 * the stream with CANCEL, and the status taken from trailers (or the headers
 * of a trailers-only answer). Its attempts go through the AttemptRunner, so
 * a route's retry or hedge policy applies to transcoded calls as to
 * pass-through ones (until the response headers arrive; the request
 * messages sent so far are replayed). States: open → (half-closed) → ended;
 * onEnd fires exactly once.
 */
export class GrpcCall implements RunnerHost, CallEvents {
  private readonly frames = new FrameReader();
  private readonly runner: AttemptRunner;
  private readonly base: OutgoingHttpHeaders;
  private readonly scope: AbortScope<AbortReason>;
  private ended = false;
  private headers: IncomingHttpHeaders = {};
  private trailers: IncomingHttpHeaders | undefined;
  /** The attempt whose head was chosen. */
  private call: UpstreamCall | undefined;
  private drainFns: (() => void)[] | undefined;
  private mark: RunnerMark = undefined;
  private lastEndpoint: string | undefined;
  /** The scope this call made for itself (no exchange): disposed when the call ends. */
  private ownScope: AbortScope<AbortReason> | undefined;
  /** The mirrored copy of this call (the route's mirror), fed the same request frames. */
  private readonly shadow: MirrorCopy | undefined;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly cluster: ClusterRuntime,
    ep: EndpointAddress,
    /** The call's metadata and :path/:authority; the call completes and keeps this object (callers build it for the call). */
    headers: OutgoingHttpHeaders,
    timeoutMs: number,
    private readonly h: CallHandlers,
    /**
     * The exchange's cancellation: the call's deadline is armed on it, and
     * it ends the call when the exchange aborts (client gone: CANCELLED;
     * a deadline: DEADLINE_EXCEEDED). Calls of our own (reflection) get one.
     */
    scope?: AbortScope<AbortReason>,
    retries?: CallRetries,
  ) {
    if (scope === undefined) scope = this.ownScope = new AbortScope();
    this.scope = scope;
    // gzip and deflate are what node:zlib decodes for us (messageDecoder): a backend compressing its answers is read, not refused.
    // The caller's headers object is the call's own (every caller builds it for this call): completed in
    // place rather than copied.
    headers[':method'] = 'POST';
    headers[':scheme'] = 'http';
    headers['content-type'] = 'application/grpc';
    headers['te'] = 'trailers';
    headers['grpc-accept-encoding'] = ACCEPTED_ENCODINGS;
    this.base = headers;
    this.runner = new AttemptRunner({ metrics: ctx.metrics, exchange: retries?.exchange }, cluster, ep, retries?.pickInfo, retries?.plan, true, true, REPLAY_MAX_BYTES, this);
    this.runner.start();
    this.shadow = retries?.mirror?.(this.base);
    // Last, so an exchange that is already over ends a call that is fully set up.
    scope.deadline(ctx.clock, timeoutMs, 'deadline_exceeded');
    scope.onAbort((reason) => (reason === 'downstream_reset' ? this.cancel('client went away') : this.expire()));
  }

  // ---- the runner's host ----

  headersFor(index: number): Record<string, unknown> {
    if (index === 0) return this.base;
    // gRFC A6: attempts after the first say how many came before, and carry the deadline left.
    const h: Record<string, unknown> = { ...this.base, 'x-outrigger-attempt-count': String(index + 1), 'grpc-previous-rpc-attempts': String(index) };
    const left = this.scope.remainingMs(this.ctx.clock);
    if (h['grpc-timeout'] !== undefined && left !== Infinity) h['grpc-timeout'] = formatGrpcTimeout(Math.max(1, left));
    return h;
  }

  open(attempt: UpstreamAttempt, headers: Record<string, unknown>, endStream: boolean, events: CallEvents): UpstreamCall {
    this.lastEndpoint = attempt.endpoint.key;
    return new H2Call(this.ctx.h2, this.cluster, attempt, headers as OutgoingHttpHeaders, endStream, events);
  }

  commit(call: UpstreamCall, head: UpstreamHead, mark: RunnerMark): CallEvents {
    this.call = call;
    this.mark = mark;
    this.headers = head.headers;
    if (head.status !== 200) {
      this.finishFromMeta(head.headers, `upstream answered HTTP ${head.status}`);
      call.cancel();
      return this;
    }
    if (head.endStream) {
      this.finishFromMeta(head.headers); // trailers-only
      return this;
    }
    this.h.onHeaders(head.headers);
    return this;
  }

  fail(f: CallFailure, mark: RunnerMark): void {
    this.mark = mark;
    if (mark?.kind === 'overflow') return this.finish(GrpcStatus.UNAVAILABLE, `upstream overflow: ${this.cluster.name}: ${mark.limit}`, {});
    switch (f.kind) {
      case 'connect_failure':
        return this.finish(GrpcStatus.UNAVAILABLE, `upstream connect error: ${f.detail ?? 'closed'}`, { local: true });
      case 'timeout':
        return this.finish(GrpcStatus.DEADLINE_EXCEEDED, `upstream request timeout: ${f.detail ?? ''}`, {});
      default:
        return this.finish(GrpcStatus.UNAVAILABLE, 'upstream reset', {});
    }
  }

  drained(): void {
    if (this.drainFns) for (const fn of this.drainFns) fn();
  }

  // ---- the chosen attempt's events ----

  onHead(): void {}

  onData(_call: UpstreamCall, c: Buffer): void {
    this.frames.each(c, (f) => {
      if (this.ended) return false;
      let data = f.data;
      if (f.flags !== 0) {
        const decoded = decodeMessage(this.headers?.['grpc-encoding'], data);
        if (typeof decoded === 'string') {
          this.call?.cancel();
          this.finish(GrpcStatus.INTERNAL, decoded, { protocolError: true });
          return false;
        }
        data = decoded;
      }
      if (!this.h.onMessage(data)) this.call?.pause();
      return true;
    });
  }

  onTrailers(_call: UpstreamCall, t: IncomingHttpHeaders): void {
    this.trailers = t;
  }

  onEnd(): void {
    if (this.ended) return;
    if (this.trailers) return this.finishFromMeta(this.trailers);
    // A clean end without trailers is a broken gRPC server, not a network failure.
    this.finish(GrpcStatus.INTERNAL, 'upstream ended the call without grpc-status', { protocolError: true });
  }

  onFail(_call: UpstreamCall, f: CallFailure): void {
    if (this.ended) return;
    if (this.trailers) return this.finishFromMeta(this.trailers);
    this.finish(GrpcStatus.UNAVAILABLE, `upstream reset (code ${f.rstCode ?? 0})`, { flag: flagOf('upstream_reset') });
  }

  onWritable(): void {
    this.drained();
  }

  // ---- the dialect's side ----

  /** The deadline passed: reset upstream, report DEADLINE_EXCEEDED. */
  private expire(): void {
    if (this.ended) return;
    this.runner.abort(flagOf('upstream_timeout'));
    this.call?.cancel();
    this.finish(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded', { flag: flagOf('upstream_timeout') });
  }

  /** Sends one message; false means wait for onDrain. */
  send(msg: Uint8Array): boolean {
    if (this.ended) return true;
    const frame = encodeFrame(0, msg);
    this.shadow?.write(frame);
    return this.runner.write(frame);
  }

  onDrain(fn: () => void): void {
    (this.drainFns ??= []).push(fn);
  }

  halfClose(): void {
    if (this.ended) return;
    this.shadow?.end();
    this.runner.end();
  }

  pause(): void {
    this.call?.pause();
  }

  resume(): void {
    this.call?.resume();
  }

  /** The client went away or the request was rejected midway: reset upstream, report CANCELLED. */
  cancel(message = 'cancelled'): void {
    if (this.ended) return;
    this.runner.abort();
    this.call?.cancel();
    this.finish(GrpcStatus.CANCELLED, message, { abandoned: true });
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
    o: {
      details?: Uint8Array | undefined;
      trailers?: IncomingHttpHeaders;
      protocolError?: boolean;
      local?: boolean;
      /** The chosen attempt's failure flag (UR, UT). */
      flag?: string;
      /** We dropped the chosen attempt (client gone, request rejected): not the endpoint's doing. */
      abandoned?: boolean;
    },
  ): void {
    if (this.ended) return;
    this.ended = true;
    this.ownScope?.dispose();
    // A call that ended before its last message was sent leaves a copy without its whole request: dropped.
    this.shadow?.requestGone();
    const call = this.call;
    if (call !== undefined && !call.attempt.done) {
      const status = Number(this.headers[':status'] ?? 0);
      call.attempt.end({ status, flag: o.flag, grpcStatus: o.protocolError ? undefined : String(code), abandoned: o.abandoned });
    }
    this.h.onEnd({
      code,
      message,
      details: o.details,
      headers: this.headers,
      trailers: o.trailers ?? {},
      protocolError: o.protocolError ?? false,
      local: o.local ?? false,
      retries: this.mark,
      attempts: this.runner.attempts,
      endpoint: call?.attempt.endpoint.key ?? this.lastEndpoint,
    });
  }

  /** Upstream attempts made so far (retries, hedges, replays included). */
  get attempts(): number {
    return this.runner.attempts;
  }
}

import http2, { type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatGrpcTimeout } from '../../core/duration.js';
import { flagOf, GrpcStatus, LOCAL_ERRORS, type LocalErrorCode } from '../../core/errors.js';
import type { ProxyContext } from '../context.js';
import type { AbortReason, ExchangeFilters } from '../downstream/downstream.js';
import type { H1Downstream } from '../downstream/h1-downstream.js';
import type { H2Downstream } from '../downstream/h2-downstream.js';
import { localReply } from '../downstream/local-reply.js';
import { copyResponseHeaders } from '../http/headers.js';
import { resetStream } from '../http/h2-reset.js';
import type { UpstreamAttempt } from '../upstream/attempt.js';
import { H1Call } from '../upstream/calls/h1-call.js';
import { H2Call } from '../upstream/calls/h2-call.js';
import type { CallEvents, CallFailure, UpstreamCall, UpstreamHead } from '../upstream/calls/upstream-call.js';
import type { AttemptOutcome } from '../upstream/endpoint-stats.js';
import { AttemptRunner, type RunnerHost, type RunnerMark } from '../upstream/retry/attempt-runner.js';
import type { UpstreamTarget } from './upstream-target.js';
import { Shadow, type ShadowRequest } from './shadow.js';

const CANCEL = http2.constants.NGHTTP2_CANCEL;
const INTERNAL_ERROR = http2.constants.NGHTTP2_INTERNAL_ERROR;

/**
 * Request body bytes kept (HTTP/2 upstreams, no retry policy) so that a
 * stream the upstream refused can be replayed; a unary gRPC call fits easily.
 */
const REPLAY_MAX_BYTES = 64 * 1024;

/**
 * The pass-through terminal for HTTP/1.1 and HTTP/2 (gRPC included) clients
 * to HTTP/1.1 or HTTP/2 upstreams: one relay per exchange.
 *
 * Request side: the client's body (through the chain's data filters, within
 * the listener's body limit) goes to the AttemptRunner, which feeds the
 * attempts in flight and keeps what a retry, hedge or refused-stream replay
 * needs. Response side: nothing reaches the client until the runner chose
 * an attempt's head (`commit`); from then on the relay passes that attempt's
 * body, trailers and resets down with backpressure both ways:
 * - an HTTP/2 → HTTP/2 head that ended the stream (gRPC trailers-only) stays
 *   headers + END_STREAM, so the status stays in the headers;
 * - `write() === false` pauses the other side until 'drain', so flow control
 *   reaches from the slow peer to the fast one and nothing is buffered without bound;
 * - an upstream reset mid-response becomes a reset downstream (RST_STREAM
 *   with the upstream's code, or the HTTP/1.1 connection cut), never a
 *   truncated answer that looks complete;
 * - the exchange's scope (client gone, route timeout, grpc-timeout) cancels
 *   every attempt (RST_STREAM CANCEL / socket destroyed) before answering
 *   DEADLINE_EXCEEDED or 504, or ending a started gRPC response with it.
 */
export function relay(ctx: ProxyContext, ds: H1Downstream | H2Downstream, t: UpstreamTarget, headers: Record<string, unknown>, upstreamH2: boolean, shadow?: ShadowRequest): void {
  if (ds.kind === 'h2') {
    const s = (ds as H2Downstream).stream;
    // Reset by the client while the pipeline ran (rapid reset): no upstream stream for it.
    if (s.closed || s.destroyed || s.rstCode) return void ctx.metrics.earlyResets.inc({ listener: t.settings.name, stage: 'before_upstream' });
  }
  new Relay(ctx, ds, t, headers, upstreamH2).start(shadow);
}

class Relay implements RunnerHost, CallEvents {
  private readonly runner: AttemptRunner;
  private readonly h2down: boolean;
  /** The HTTP/2 stream (HTTP/2 clients) or the HTTP/1.1 request and response (HTTP/1.1 clients). */
  private readonly stream: ServerHttp2Stream | undefined;
  private readonly req: IncomingMessage | undefined;
  private readonly res: ServerResponse | undefined;
  private readonly respData: boolean;
  private readonly hasBody: boolean;
  /** The attempt whose head was relayed. */
  private call: UpstreamCall | undefined;
  private responded = false;
  /** Our side of the response is over (ended, cut off, or answered locally). */
  private finished = false;
  private timedOut = false;
  private trailers: OutgoingHttpHeaders | undefined;
  private status = 0;
  private drainHooked = false;
  /** Response chunks relayed so far (HTTP/2 clients): the second and later of a read are corked together. */
  private chunks = 0;
  /** The client's stream is corked until the immediate after this read (uncorkAfterRead). */
  private corked = false;
  /** The route's mirrored copy of this request, fed the same body (forward/shadow.ts). */
  private shadow: Shadow | undefined = undefined;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly ds: H1Downstream | H2Downstream,
    private readonly t: UpstreamTarget,
    private readonly headers: Record<string, unknown>,
    private readonly upH2: boolean,
  ) {
    this.h2down = ds.kind === 'h2';
    let hasBody: boolean;
    if (this.h2down) {
      const d = ds as H2Downstream;
      this.stream = d.stream;
      hasBody = !d.endAtHeaders;
    } else {
      const d = ds as H1Downstream;
      this.req = d.req;
      this.res = d.res;
      hasBody = d.req.headers['content-length'] !== undefined || d.req.headers['transfer-encoding'] !== undefined;
    }
    this.hasBody = hasBody;
    const chain = ds.chain;
    this.respData = chain !== undefined && chain.hasResponseData;
    this.runner = new AttemptRunner({ metrics: ctx.metrics, exchange: ds.ex }, t.cluster, t.ep, t.pickInfo, t.plan, ds.grpc, hasBody, upH2 ? REPLAY_MAX_BYTES : 0, this);
  }

  start(shadowReq: ShadowRequest | undefined): void {
    const ds = this.ds;
    this.runner.start();
    if (shadowReq !== undefined) this.shadow = new Shadow(this.ctx, shadowReq, this.hasBody);
    this.pumpBody();
    ds.scope.onAbort((reason) => this.onAbort(reason));
    // Whatever else happens, the answer's attempt ends with the exchange.
    ds.onClose(() => this.endAttempt(undefined));
  }

  // ---- request side ----

  private pumpBody(): void {
    const ds = this.ds;
    if (!this.hasBody) return;
    // The client's body, or what a filter replaced it with (request decompression).
    const body = ds.requestBody;
    const ex = ds.ex;
    const chain: ExchangeFilters | undefined = ds.chain;
    const reqData = chain !== undefined && chain.hasRequestData;
    // gRPC to an HTTP/2 upstream streams without a body limit (messages are bounded by the peers); everything else has the listener's.
    const maxBody = ds.grpc && this.upH2 ? 0 : this.t.settings.maxRequestBodyBytes;
    const runner = this.runner;
    const shadow = this.shadow;
    body.on('data', (chunk: Buffer) => {
      ex.bytes_in += chunk.length;
      if (maxBody > 0 && ex.bytes_in > maxBody) return this.tooLarge();
      if (reqData) chunk = chain.requestData(ds, chunk);
      if (shadow !== undefined) shadow.write(chunk);
      if (!runner.write(chunk)) body.pause();
    });
    body.on('end', () => {
      shadow?.end();
      runner.end();
    });
  }

  private tooLarge(): void {
    const ds = this.ds;
    if (this.finished) return;
    if (this.req !== undefined) {
      this.req.pause();
      ds.noKeepAlive();
    }
    this.runner.abort();
    this.shadow?.requestGone();
    this.dropAnswer();
    this.finished = true;
    localReply(ds, 'request_too_large');
  }

  drained(): void {
    this.ds.requestBody.resume();
  }

  // ---- the runner's host ----

  headersFor(index: number): Record<string, unknown> {
    if (index === 0) return this.headers;
    const h: Record<string, unknown> = { ...this.headers, 'x-outrigger-attempt-count': String(index + 1) };
    if (this.ds.grpc) {
      // gRFC A6: how many attempts preceded this one; the deadline left for it.
      h['grpc-previous-rpc-attempts'] = String(index);
      if (h['grpc-timeout'] !== undefined) {
        const left = this.ds.scope.remainingMs(this.ctx.clock);
        if (left !== Infinity) h['grpc-timeout'] = formatGrpcTimeout(Math.max(1, left));
      }
    }
    return h;
  }

  open(attempt: UpstreamAttempt, headers: Record<string, unknown>, endStream: boolean, events: CallEvents): UpstreamCall {
    const ctx = this.ctx;
    const t = this.t;
    this.ds.ex.upstream = attempt.endpoint.key;
    if (this.upH2) return new H2Call(ctx.h2, t.cluster, attempt, headers as OutgoingHttpHeaders, endStream, events);
    return new H1Call(ctx.h1, ctx.clock, t.cluster, attempt, this.ds.method, t.path, headers as Record<string, string | string[]>, endStream, events);
  }

  commit(call: UpstreamCall, head: UpstreamHead, mark: RunnerMark): CallEvents {
    const ds = this.ds;
    const ex = ds.ex;
    this.call = call;
    this.responded = true;
    // The answer's endpoint (a hedge that won may have started before the last one).
    ex.upstream = call.attempt.endpoint.key;
    // Mesh mTLS: who answered (Istio's destination_principal); plaintext clusters pay nothing.
    if (this.t.cluster.upstreamTls?.mode === 'mesh') ex.upstream_principal = call.peerPrincipal();
    this.noteAttempts();
    const status = head.status;
    this.status = status;
    ex.status = status;
    let overloaded = false;
    if (mark !== undefined) {
      if (mark.kind === 'exhausted') ex.flags = flagOf('retries_exhausted');
      else {
        ex.flags = flagOf('upstream_overflow');
        overloaded = true;
      }
    }
    if (ds.closed) return this;
    if (this.h2down) {
      const h: OutgoingHttpHeaders = this.upH2 ? (head.headers as OutgoingHttpHeaders) : copyResponseHeaders(head.headers, {});
      if (overloaded) h['x-outrigger-overloaded'] = 'true';
      if (head.endStream) {
        // Trailers-only (a gRPC error without a body) or an empty response: the status stays in the headers.
        const gs = head.headers['grpc-status'];
        if (gs !== undefined) ex.grpc_status = gs as string;
        this.finished = true;
        ds.respondEnd(status, h);
        return this;
      }
      ds.respond(status, h, true);
      return this;
    }
    const out = copyResponseHeaders(head.headers, {});
    if (overloaded) out['x-outrigger-overloaded'] = 'true';
    if (this.ctx.lifecycle.draining) out['connection'] = 'close';
    ds.respond(status, out, false, this.upH2 ? undefined : head.statusMessage);
    if (head.endStream) {
      this.finished = true;
      ds.end();
    }
    return this;
  }

  fail(f: CallFailure, mark: RunnerMark): void {
    const ds = this.ds;
    this.noteAttempts();
    if (this.timedOut || this.finished) return;
    this.finished = true;
    if (mark?.kind === 'overflow') return localReply(ds, 'upstream_overflow', `${this.t.cluster.name}: ${mark.limit}`);
    const code: LocalErrorCode = f.kind === 'connect_failure' ? 'upstream_connect_failure' : f.kind === 'timeout' ? 'upstream_timeout' : 'upstream_reset';
    localReply(ds, code, f.detail);
    if (mark?.kind === 'exhausted') ds.ex.flags = `${LOCAL_ERRORS[code].flag},${flagOf('retries_exhausted')}`;
  }

  private noteAttempts(): void {
    const n = this.runner.attempts;
    if (n > 1) this.ds.ex.attempts = n;
  }

  // ---- the answer's events ----

  onHead(): void {}

  onData(call: UpstreamCall, chunk: Buffer): void {
    if (this.timedOut) return;
    const ds = this.ds;
    ds.ex.bytes_out += chunk.length;
    let ok: boolean;
    if (this.respData) {
      // Through the chain's data filters and response encoder (Downstream.write) only when it has them.
      ok = ds.write(chunk);
    } else if (this.h2down) {
      const s = this.stream!;
      // A streaming answer arrives as many DATA frames per socket read (a gRPC server writes each message as
      // its own): from the second chunk on, the client's stream is corked until the read is done, so a
      // read's chunks go down in one writev (one native write, DATA frames filled up to the frame size)
      // instead of one write per message. The first chunk is never held: a unary answer pays nothing.
      if (this.chunks++ > 0 && !this.corked) {
        this.corked = true;
        s.cork();
        // An immediate runs after the whole read (a nextTick would run between its frames).
        setImmediate(uncorkAfterRead, this);
      }
      ok = s.write(chunk);
    } else ok = this.res!.write(chunk);
    if (!ok) {
      call.pause();
      // The client's drain resumes the answer; hooked at the first full write, so a response that never fills the client's buffer pays for no listener.
      if (!this.drainHooked) {
        this.drainHooked = true;
        ds.onDrain(() => this.call?.resume());
      }
    }
  }

  /** @internal the immediate after a read that corked the client's stream. */
  uncork(): void {
    this.corked = false;
    const s = this.stream!;
    if (!s.destroyed) s.uncork();
  }

  onTrailers(_call: UpstreamCall, t: IncomingHttpHeaders): void {
    const gs = t['grpc-status'];
    if (gs !== undefined) this.ds.ex.grpc_status = gs as string;
    this.trailers = this.h2down && this.upH2 ? (t as OutgoingHttpHeaders) : copyResponseHeaders(t, {});
  }

  onEnd(): void {
    this.endAttempt(undefined);
    if (this.finished || this.timedOut) return;
    this.finished = true;
    const ds = this.ds;
    if (ds.closed) return;
    if (this.h2down) ds.end(undefined, this.trailers ?? {});
    else if (!this.res!.writableEnded) ds.end(undefined, this.trailers);
  }

  onFail(_call: UpstreamCall, f: CallFailure): void {
    this.endAttempt(flagOf('upstream_reset'));
    if (this.finished || this.timedOut) return;
    this.finished = true;
    const ds = this.ds;
    if (ds.closed) return;
    // Reset mid-response: pass the reset down (never a truncated answer that looks complete).
    ds.ex.flags = flagOf('upstream_reset');
    if (this.h2down) resetStream(this.stream!, f.rstCode || INTERNAL_ERROR);
    else this.res!.destroy();
  }

  onWritable(): void {
    this.drained();
  }

  // ---- cancellation ----

  private onAbort(reason: AbortReason): void {
    const ds = this.ds;
    const ex = ds.ex;
    this.runner.abort(reason === 'downstream_reset' ? undefined : LOCAL_ERRORS[reason].flag);
    // A copy still waiting for body the client will never send is dropped; one whose request is whole goes on.
    this.shadow?.requestGone();
    if (reason === 'downstream_reset') {
      // The client went away (or we reset it): cancel upstream.
      if (!this.responded && ex.flags === undefined) ex.flags = flagOf('downstream_reset');
      this.dropAnswer();
      return;
    }
    this.timedOut = true;
    this.noteAttempts();
    const call = this.call;
    if (call !== undefined && !call.closed) call.cancel(CANCEL);
    this.endAttempt(LOCAL_ERRORS[reason].flag);
    if (this.finished) return;
    this.finished = true;
    if (!this.responded) return localReply(ds, reason);
    if (this.h2down) {
      const stream = this.stream!;
      if (stream.closed) return;
      if (ds.grpc) {
        // Headers are out: end the stream with our own status in the trailers.
        ex.flags = flagOf('deadline_exceeded');
        ex.grpc_status = String(GrpcStatus.DEADLINE_EXCEEDED);
        ds.end(undefined, { 'grpc-status': GrpcStatus.DEADLINE_EXCEEDED, 'grpc-message': 'deadline exceeded' });
      } else stream.close(CANCEL);
    } else this.res!.destroy();
  }

  /** The exchange no longer wants the answer's attempt (client gone, body too large). */
  private dropAnswer(): void {
    const call = this.call;
    if (call === undefined) return;
    if (!call.closed) call.cancel(CANCEL);
    const a = call.attempt;
    if (!a.done) a.end(ABANDONED);
  }

  /** Ends the answer's attempt once: its status, grpc-status, and `flag` when it failed or timed out. */
  private endAttempt(flag: string | undefined): void {
    const call = this.call;
    if (call === undefined || call.attempt.done) return;
    const ex = this.ds.ex;
    const o: AttemptOutcome =
      flag === undefined && !this.finished && this.ds.closed
        ? ABANDONED // the exchange closed under a response still coming: the client's doing
        : { status: this.status, flag, grpcStatus: ex.grpc_status };
    call.attempt.end(o);
  }
}

function uncorkAfterRead(r: Relay): void {
  r.uncork();
}

const ABANDONED: AttemptOutcome = { status: 0, flag: undefined, grpcStatus: undefined, abandoned: true };

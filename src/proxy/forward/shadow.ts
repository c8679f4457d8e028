import http2, { type OutgoingHttpHeaders } from 'node:http2';
import type { Timer } from '../../core/clock.js';
import { flagOf } from '../../core/errors.js';
import type { ProxyContext } from '../context.js';
import type { UpstreamAttempt } from '../upstream/attempt.js';
import { H1Call } from '../upstream/calls/h1-call.js';
import { H2Call } from '../upstream/calls/h2-call.js';
import type { CallEvents, CallFailure, UpstreamCall, UpstreamHead } from '../upstream/calls/upstream-call.js';
import type { AttemptOutcome } from '../upstream/endpoint-stats.js';
import { AttemptRunner, type RunnerHost } from '../upstream/retry/attempt-runner.js';
import type { MirrorTarget } from './upstream-target.js';

/** How a mirrored copy ended (`outrigger_mirror_requests_total{result}`). */
export type MirrorResult = 'answered' | 'failed' | 'timed_out' | 'skipped' | 'abandoned';

/** What the relay needs to start a mirrored copy: where, with which headers (`:authority` / Host already `-shadow`). */
export interface ShadowRequest {
  readonly target: MirrorTarget;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, unknown>;
  readonly upstreamH2: boolean;
  readonly grpc: boolean;
}

const CANCEL = http2.constants.NGHTTP2_CANCEL;
/**
 * Body bytes a copy may queue past its upstream's own buffer (written while
 * it asked to wait) before it is abandoned: the caller's body is never paused
 * for a mirror, so a slower mirror must not grow memory without bound.
 */
export const MIRROR_MAX_QUEUED_BYTES = 256 * 1024;
const ABANDONED: AttemptOutcome = { status: 0, flag: undefined, grpcStatus: undefined, abandoned: true };

/**
 * One mirrored copy of a request (Envoy's request mirror policy): a single
 * attempt (through the AttemptRunner, so it is counted, balanced and
 * outlier-detected like any attempt to its cluster) fed the same body chunks
 * the relay sends to the real upstream. Nothing it does reaches the caller:
 * its answer is read and dropped, its failures only counted; it never
 * pushes back on the caller's body — a copy whose upstream falls more than
 * MIRROR_MAX_QUEUED_BYTES behind is abandoned rather than buffered — and it lives
 * on its own timer, not the caller's deadline, so a slow mirror neither
 * slows nor outlives the caller's timeout concerns.
 */
export class Shadow implements RunnerHost, CallEvents {
  private readonly runner: AttemptRunner;
  private readonly timer: Timer;
  private call: UpstreamCall | undefined;
  private status = 0;
  private done = false;
  private bodyEnded: boolean;
  /** Bytes written since the copy's upstream last asked to wait (undefined: it has not). */
  private queued: number | undefined = undefined;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly req: ShadowRequest,
    hasBody: boolean,
  ) {
    const t = req.target;
    this.bodyEnded = !hasBody;
    this.runner = new AttemptRunner({ metrics: ctx.metrics }, t.cluster, t.ep, t.pickInfo, undefined, req.grpc, hasBody, 0, this);
    this.timer = ctx.clock.setTimer(t.timeoutMs, () => this.finish('timed_out'));
    this.runner.start();
  }

  /** A chunk of the request body, as sent to the real upstream. */
  write(chunk: Buffer): void {
    if (this.done) return;
    if (this.queued !== undefined && (this.queued += chunk.length) > MIRROR_MAX_QUEUED_BYTES) return this.finish('abandoned');
    if (!this.runner.write(chunk)) this.queued ??= 0;
  }

  end(): void {
    this.bodyEnded = true;
    if (!this.done) this.runner.end();
  }

  /** The caller went away or its request was refused: a copy without its whole body is dropped. */
  requestGone(): void {
    if (!this.bodyEnded) this.finish('abandoned');
  }

  // ---- the runner's host ----

  headersFor(): Record<string, unknown> {
    return this.req.headers;
  }

  open(attempt: UpstreamAttempt, headers: Record<string, unknown>, endStream: boolean, events: CallEvents): UpstreamCall {
    const { ctx, req } = this;
    const cluster = req.target.cluster;
    if (req.upstreamH2) return new H2Call(ctx.h2, cluster, attempt, headers as OutgoingHttpHeaders, endStream, events);
    return new H1Call(ctx.h1, ctx.clock, cluster, attempt, req.method, req.path, headers as Record<string, string | string[]>, endStream, events);
  }

  commit(call: UpstreamCall, head: UpstreamHead): CallEvents {
    this.call = call;
    this.status = head.status;
    return this;
  }

  fail(f: CallFailure): void {
    this.finish(f.kind === 'timeout' ? 'timed_out' : 'failed');
  }

  drained(): void {
    this.queued = undefined;
  }

  // ---- the answer's events: read and dropped ----

  onHead(): void {}
  onData(): void {}
  onTrailers(): void {}
  onWritable(): void {
    this.queued = undefined;
  }

  onEnd(call: UpstreamCall): void {
    if (!call.attempt.done) call.attempt.end({ status: this.status, flag: undefined, grpcStatus: undefined });
    this.finish('answered');
  }

  onFail(call: UpstreamCall): void {
    if (!call.attempt.done) call.attempt.end({ status: this.status, flag: flagOf('upstream_reset'), grpcStatus: undefined });
    this.finish('failed');
  }

  private finish(result: MirrorResult): void {
    if (this.done) return;
    this.done = true;
    this.timer.cancel();
    if (result !== 'answered') {
      this.runner.abort(result === 'timed_out' ? flagOf('upstream_timeout') : undefined);
      const call = this.call;
      if (call !== undefined) {
        if (!call.closed) call.cancel(CANCEL);
        if (!call.attempt.done) call.attempt.end(ABANDONED);
      }
    }
    this.ctx.metrics.mirrors.inc({ cluster: this.req.target.cluster.name, result });
  }
}

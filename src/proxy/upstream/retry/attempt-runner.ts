import type { IncomingHttpHeaders } from 'node:http2';
import type { Exchange } from '../../http/exchange.js';
import type { Timer } from '../../../core/clock.js';
import { flagOf } from '../../../core/errors.js';
import { startAttempt, type AttemptKind, type UpstreamAttempt, type UpstreamMetrics } from '../attempt.js';
import type { CallEvents, CallFailure, UpstreamCall, UpstreamHead } from '../calls/upstream-call.js';
import type { ClusterRuntime } from '../cluster.js';
import type { EndpointAddress } from '../endpoint.js';
import type { AttemptOutcome } from '../endpoint-stats.js';
import type { PickInfo } from '../lb/picker.js';
import { retryBackoffMs } from './backoff.js';
import type { RetryLimit } from './retry-budget.js';
import { nonFatalAnswer, retriableAnswer, retriableFailure, type RetryPlan, type RunnerPlan } from './retry-policy.js';

export type { RunnerPlan };

/** How the answer (or the failure) came about, for the access log and the response. */
export type RunnerMark =
  /** A retry or hedge was wanted and numRetries / maxAttempts were used up: flag URX. */
  | { readonly kind: 'exhausted' }
  /** The next attempt was refused by the retry budget or circuitBreakers.maxRetries: UO, x-outrigger-overloaded. */
  | { readonly kind: 'overflow'; readonly limit: RetryLimit }
  | undefined;

/** The side that relays the chosen answer downstream (forward/relay.ts, transcode/grpc-call.ts). */
export interface RunnerHost {
  /** Request headers of attempt `index` (0: the request's own object; later ones a copy with attempt headers). */
  headersFor(index: number): Record<string, unknown>;
  /** Opens the attempt's call; `endStream`: the request has no body (or it is all replayed at once). */
  open(attempt: UpstreamAttempt, headers: Record<string, unknown>, endStream: boolean, events: CallEvents): UpstreamCall;
  /** `head` is the answer: relay it; the returned events receive the call's rest (data, trailers, end, failure). */
  commit(call: UpstreamCall, head: UpstreamHead, mark: RunnerMark): CallEvents;
  /** No attempt will answer: the last one's failure, or why no further attempt was made. */
  fail(f: CallFailure, mark: RunnerMark): void;
  /** The request side can take more bytes again (after write() returned false). */
  drained(): void;
}

export interface RunnerDeps {
  readonly metrics: UpstreamMetrics;
  /** The exchange the attempts serve (undefined: a call of our own), handed to startAttempt. */
  readonly exchange?: Exchange | undefined;
}

/** Refused streams were never processed, so replaying costs a round trip only; the bound stops a backend that refuses everything. */
export const MAX_REFUSED_REPLAYS = 4;
/** Picks tried for an endpoint no earlier attempt used (Istio's host_selection_retry_max_attempts). */
const HOST_SELECTION_ATTEMPTS = 5;

const CONNECT_FAILED: AttemptOutcome = { status: 0, flag: flagOf('upstream_connect_failure'), grpcStatus: undefined };
const RESET: AttemptOutcome = { status: 0, flag: flagOf('upstream_reset'), grpcStatus: undefined };
const TIMED_OUT: AttemptOutcome = { status: 0, flag: flagOf('upstream_timeout'), grpcStatus: undefined };
const ABANDONED: AttemptOutcome = { status: 0, flag: undefined, grpcStatus: undefined, abandoned: true };

/**
 * The attempts of one request until one of them gives the answer.
 *
 * It starts the first attempt, feeds the request body to the attempts in
 * flight (keeping up to `bufferLimitBytes` of it to replay into later ones),
 * and judges each attempt's head or failure before anything reaches the
 * client:
 * - **retry** (Envoy / gRFC A6): a failure or head that `retryOn` covers is
 *   dropped and another attempt sent after a full-jitter backoff, to another
 *   endpoint (previousHosts), while numRetries, the body buffer and the
 *   retry budget (or maxRetries) allow; otherwise it is the answer
 *   (URX / UO marked);
 * - **hedge** (gRFC A6): further attempts every hedgingDelay to other
 *   endpoints; a non-fatal answer or a failure sends the next at once; the
 *   first final answer wins and the others are cancelled;
 * - **refused streams** (never processed upstream) are replayed on the same
 *   endpoint, up to MAX_REFUSED_REPLAYS, whatever the policy.
 * Once a head is chosen (`commit`), the request is never retried again: its
 * response may already be streaming to the client. The route timeout and
 * the client's deadline bound all attempts (the host's scope aborts the runner).
 *
 * States: running (attempts in flight or a timer armed) → committed | failed | aborted.
 * Every attempt starts in `launch` (through upstream/attempt.ts's startAttempt)
 * and every attempt the runner drops ends in `drop`; the committed one is
 * ended by its host.
 */
export class AttemptRunner implements CallEvents {
  private readonly live: UpstreamCall[] = [];
  private committed: UpstreamCall | undefined;
  private buffer: Buffer[] | undefined;
  private bufferedBytes = 0;
  private downEnded = false;
  private over = false;
  /** Attempts started (the next attempt's index). */
  private started = 0;
  private retries = 0;
  private replays = 0;
  /** Endpoints already used, for previousHosts (created on the second attempt). */
  private tried: Set<string> | undefined;
  /** Backoff before a retry, or the delay before the next hedge. */
  private timer: Timer | undefined;
  /** A retry slot taken for an attempt not started yet (released if it never starts). */
  private slotPending = false;
  /** Calls whose write() returned false and that have not drained. */
  private blocked = 0;
  /** write() returned false because no attempt was in flight (backoff): resume when the next starts. */
  private heldBody = false;

  constructor(
    private readonly deps: RunnerDeps,
    private readonly cluster: ClusterRuntime,
    private readonly first: EndpointAddress,
    private readonly pickInfo: PickInfo | undefined,
    private readonly plan: RunnerPlan | undefined,
    /** gRPC call: a per-try timeout counts as deadline-exceeded. */
    private readonly grpc: boolean,
    /** Whether the request has a body at all (none: every attempt ends its request at once). */
    private readonly hasBody: boolean,
    /** Replay buffer when there is no plan (HTTP/2 upstreams: refused streams); 0: none. */
    replayBytesWithoutPlan: number,
    private readonly host: RunnerHost,
  ) {
    const limit = plan !== undefined ? plan.bufferLimitBytes : replayBytesWithoutPlan;
    if (hasBody && limit > 0) this.buffer = [];
    else if (!hasBody && (plan !== undefined || replayBytesWithoutPlan > 0)) this.buffer = EMPTY;
    this.limit = limit;
  }

  private readonly limit: number;

  /** Sends the first attempt (and arms the first hedge). */
  start(): void {
    this.launch(this.first, 'first', false);
    if (this.plan?.hedge !== undefined) this.armHedge();
  }

  /** Request body bytes; false: pause the source until the host's drained(). */
  write(chunk: Buffer): boolean {
    const c = this.committed;
    if (c !== undefined) return c.write(chunk);
    if (this.over) return true;
    const live = this.live;
    const buf = this.buffer;
    if (buf !== undefined && buf !== EMPTY) {
      this.bufferedBytes += chunk.length;
      if (this.bufferedBytes <= this.limit || live.length === 0) buf.push(chunk);
      else this.dropBuffer();
    }
    if (live.length === 0) {
      // Between attempts (backoff): keep it for the next one and hold the source meanwhile.
      this.heldBody = true;
      return false;
    }
    let ok = true;
    for (const call of live) {
      if (!call.write(chunk)) {
        if (!BLOCKED.has(call)) {
          BLOCKED.add(call);
          this.blocked++;
        }
        ok = false;
      }
    }
    return ok;
  }

  /** The request body ended. */
  end(): void {
    this.downEnded = true;
    const c = this.committed;
    if (c !== undefined) return c.end();
    for (const call of this.live) call.end();
  }

  /**
   * The exchange is over (client gone, deadline): every attempt in flight is
   * dropped, nothing more starts. `timeoutFlag`: a deadline ended it (UT, DE),
   * which the attempts' outcomes carry (outlier detection counts UT).
   */
  abort(timeoutFlag?: string): void {
    if (this.over) return;
    this.over = true;
    this.clearTimer();
    const o: AttemptOutcome = timeoutFlag === undefined ? ABANDONED : { status: 0, flag: timeoutFlag, grpcStatus: undefined };
    for (const call of this.live.splice(0)) this.drop(call, o);
  }

  /** Attempts started so far. */
  get attempts(): number {
    return this.started;
  }

  // ---- CallEvents of the attempts in flight (before an answer is chosen) ----

  onHead(call: UpstreamCall, head: UpstreamHead): void {
    this.clearTryTimer(call);
    if (this.over || this.committed !== undefined) return this.drop(call, ABANDONED);
    const plan = this.plan;
    if (plan === undefined) return this.commit(call, head, undefined);
    const gs = grpcStatusOf(head.headers);
    let mark: RunnerMark = undefined;
    if (plan.hedge !== undefined) {
      if (nonFatalAnswer(plan.hedge, head.status, gs)) {
        if (this.live.length > 1) {
          // Others may still answer: drop this one and send the next hedge at once (A6).
          this.remove(call);
          this.drop(call, answered(head, gs));
          return this.hedgeNow();
        }
        if (this.started < plan.hedge.maxAttempts && this.buffer !== undefined) {
          const next = this.nextAttempt();
          if ('ep' in next) {
            this.remove(call);
            this.drop(call, answered(head, gs));
            this.clearTimer();
            this.launch(next.ep, 'hedge', true);
            return this.armHedge();
          }
          mark = markOf(next);
        } else mark = EXHAUSTED;
      }
    } else if (plan.retry !== undefined && retriableAnswer(plan.retry, head.status, gs)) {
      const d = this.scheduleRetry(plan.retry);
      if (d === SCHEDULED) {
        this.remove(call);
        this.drop(call, answered(head, gs));
        return;
      }
      mark = d;
    }
    this.commit(call, head, mark);
  }

  onData(): void {
    // Before an answer is chosen no body arrives (it follows the head, and a dropped call reports nothing).
  }

  onTrailers(): void {}

  onEnd(): void {}

  onFail(call: UpstreamCall, f: CallFailure): void {
    this.clearTryTimer(call);
    this.remove(call);
    if (this.over || this.committed !== undefined) return this.drop(call, ABANDONED);
    if (f.kind === 'refused') {
      this.drop(call, ABANDONED, 'refused');
      // Never processed upstream: replay on the same endpoint (a fresh session), not counted as a retry.
      if (this.buffer !== undefined && this.replays < MAX_REFUSED_REPLAYS) {
        this.replays++;
        return this.launch(call.attempt.endpoint, 'replay', false);
      }
    } else this.drop(call, f.kind === 'connect_failure' ? CONNECT_FAILED : f.kind === 'timeout' ? TIMED_OUT : RESET);
    const plan = this.plan;
    if (plan?.hedge !== undefined) {
      // A failed hedge is not an answer: the others may still give one, and the next goes now (A6).
      if (this.live.length > 0) return this.hedgeNow();
      if (this.started < plan.hedge.maxAttempts && this.buffer !== undefined) {
        const next = this.nextAttempt();
        if ('ep' in next) {
          this.clearTimer();
          this.launch(next.ep, 'hedge', true);
          return this.armHedge();
        }
        return this.finishFailed(f, markOf(next));
      }
      return this.finishFailed(f, this.started > 1 ? EXHAUSTED : undefined);
    }
    if (this.live.length > 0) return;
    if (plan?.retry !== undefined && retriableFailure(plan.retry, f.kind, this.grpc)) {
      const d = this.scheduleRetry(plan.retry);
      if (d === SCHEDULED) return;
      return this.finishFailed(f, d);
    }
    this.finishFailed(f, undefined);
  }

  onWritable(call: UpstreamCall): void {
    if (!BLOCKED.delete(call)) return;
    this.blocked--;
    if (this.blocked === 0) this.host.drained();
  }

  // ---- decisions ----

  /**
   * Takes a retry slot, picks the endpoint and arms the backoff: SCHEDULED
   * (the caller drops its attempt), or the mark of the answer when no retry
   * will be made (undefined: not retriable any more, e.g. the body outgrew the buffer).
   */
  private scheduleRetry(p: RetryPlan): typeof SCHEDULED | RunnerMark {
    if (this.retries >= p.numRetries) return EXHAUSTED;
    if (this.buffer === undefined) return undefined; // the body outgrew the buffer: nothing to replay
    const next = this.nextAttempt();
    if (!('ep' in next)) return markOf(next);
    this.retries++;
    this.slotPending = true;
    const ep = next.ep;
    const delay = retryBackoffMs(this.retries, p.baseIntervalMs, p.maxIntervalMs, this.cluster.lb.random);
    this.timer = this.cluster.lb.clock.setTimer(delay, () => {
      this.timer = undefined;
      this.slotPending = false;
      if (this.over || this.committed !== undefined) return this.cluster.releaseRetry();
      this.launch(ep, 'retry', true);
    });
    return SCHEDULED;
  }

  /** A retry slot and an endpoint for one more attempt, or why there is none. */
  private nextAttempt(): { ep: EndpointAddress } | { limit: RetryLimit } | { none: true } {
    const limit = this.cluster.acquireRetry(this.plan?.budget);
    if (limit !== undefined) {
      this.deps.metrics.upstreamOverflow(this.cluster.name, limit);
      return { limit };
    }
    const ep = this.pickNext();
    if (ep === undefined) {
      this.cluster.releaseRetry();
      return NONE;
    }
    return { ep };
  }

  /** The next endpoint: one no earlier attempt used when the policy says so and the cluster has one. */
  private pickNext(): EndpointAddress | undefined {
    const info: PickInfo = { ...(this.pickInfo ?? NO_PICK_INFO), hash: undefined };
    const avoid = this.plan?.hedge !== undefined || this.plan?.retry?.previousHosts !== false;
    let last: EndpointAddress | undefined;
    for (let i = 0; i < HOST_SELECTION_ATTEMPTS; i++) {
      const p = this.cluster.pick(info);
      if (p.ep === undefined) return last;
      last = p.ep;
      if (!avoid || this.tried === undefined || !this.tried.has(p.ep.key)) return p.ep;
    }
    return last;
  }

  /** Sends hedges: at once while hedgingDelay is 0, else one per delay, up to maxAttempts. */
  private armHedge(): void {
    const h = this.plan!.hedge!;
    if (this.over || this.committed !== undefined) return;
    if (h.delayMs <= 0) {
      while (this.started < h.maxAttempts && this.live.length > 0 && this.tryHedge());
      return;
    }
    if (this.started >= h.maxAttempts) return;
    this.timer = this.cluster.lb.clock.setTimer(h.delayMs, () => {
      this.timer = undefined;
      if (this.over || this.committed !== undefined) return;
      if (this.tryHedge()) this.armHedge();
    });
  }

  /** Sends the next hedge now (A6: a non-fatal answer or a failure shortcuts the delay), if one is left. */
  private hedgeNow(): void {
    if (this.started >= this.plan!.hedge!.maxAttempts) return;
    this.clearTimer();
    if (this.tryHedge()) this.armHedge();
  }

  private tryHedge(): boolean {
    if (this.buffer === undefined) return false;
    const next = this.nextAttempt();
    if (!('ep' in next)) return false;
    this.launch(next.ep, 'hedge', true);
    return true;
  }

  // ---- attempts ----

  /** THE place an attempt of this request starts: headers, startAttempt (the seam), the call, the body replayed. */
  private launch(ep: EndpointAddress, kind: AttemptKind, retrySlot: boolean): void {
    const index = this.started++;
    const headers = this.host.headersFor(index);
    const attempt = startAttempt(this.deps.metrics, this.cluster, ep, index, kind, headers, this.deps.exchange);
    if (retrySlot) attempt.holdsRetrySlot();
    if (kind !== 'first') this.deps.metrics.upstreamRetry(this.cluster.name, kind);
    if (index > 0 || this.plan !== undefined) (this.tried ??= new Set()).add(ep.key);
    const buf = this.buffer;
    const endNow = !this.hasBody || (this.downEnded && (buf === undefined || buf.length === 0));
    const call = this.host.open(attempt, headers, endNow, this);
    this.live.push(call);
    if (!endNow && buf !== undefined) {
      for (const c of buf) {
        if (!call.write(c) && !BLOCKED.has(call)) {
          BLOCKED.add(call);
          this.blocked++;
        }
      }
      if (this.downEnded) call.end();
      if (this.bufferedBytes > this.limit) this.dropBuffer();
    }
    const p = this.plan?.retry;
    if (p !== undefined && p.perTryTimeoutMs > 0 && this.plan?.hedge === undefined) {
      call.tryTimer = this.cluster.lb.clock.setTimer(p.perTryTimeoutMs, () => {
        call.tryTimer = undefined;
        if (call.closed) return;
        call.cancel();
        this.onFail(call, { kind: 'timeout', detail: `per-try timeout after ${p.perTryTimeoutMs}ms` });
      });
    }
    if (this.heldBody && this.blocked === 0) {
      this.heldBody = false;
      this.host.drained();
    }
  }

  /**
   * The body outgrew the buffer: no attempt can be replayed from now on.
   * Hedging keeps the oldest attempt in flight only (it alone has every byte
   * and the request needs one answer).
   */
  private dropBuffer(): void {
    this.buffer = undefined;
    if (this.plan?.hedge === undefined) return;
    this.clearTimer();
    while (this.live.length > 1) this.drop(this.live.pop()!, ABANDONED);
  }

  private commit(call: UpstreamCall, head: UpstreamHead, mark: RunnerMark): void {
    this.remove(call);
    this.committed = call;
    this.buffer = undefined;
    this.clearTimer();
    // (Guarded so that the single-attempt path touches neither the WeakSet nor a new array.)
    const wasBlocked = this.blocked > 0 && BLOCKED.delete(call);
    if (wasBlocked) this.blocked--;
    const pausedByOthers = this.blocked > 0;
    if (this.live.length > 0) for (const other of this.live.splice(0)) this.drop(other, ABANDONED);
    this.blocked = 0;
    call.events = this.host.commit(call, head, mark);
    // The answer's own 'drain' now reaches the host; if only dropped attempts held the body back, resume it here.
    if (pausedByOthers && !wasBlocked) this.host.drained();
  }

  private finishFailed(f: CallFailure, mark: RunnerMark): void {
    if (this.over) return;
    this.over = true;
    this.clearTimer();
    this.host.fail(f, mark);
  }

  /** Ends an attempt the runner dropped (cancelled in flight, or judged and not chosen). */
  private drop(call: UpstreamCall, outcome: AttemptOutcome, result?: 'refused'): void {
    this.clearTryTimer(call);
    if (!call.closed) call.cancel();
    if (this.blocked > 0 && BLOCKED.delete(call)) this.blocked--;
    call.attempt.end(outcome, result);
  }

  private remove(call: UpstreamCall): void {
    const i = this.live.indexOf(call);
    if (i >= 0) this.live.splice(i, 1);
  }

  private clearTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (this.slotPending) {
      this.slotPending = false;
      this.cluster.releaseRetry();
    }
  }

  private clearTryTimer(call: UpstreamCall): void {
    call.tryTimer?.cancel();
    call.tryTimer = undefined;
  }
}

const EMPTY: Buffer[] = [];
const EXHAUSTED: RunnerMark = { kind: 'exhausted' };
const SCHEDULED = Symbol('retry scheduled');
const NONE = { none: true } as const;

function markOf(next: { limit: RetryLimit } | { none: true }): RunnerMark {
  return 'limit' in next ? { kind: 'overflow', limit: next.limit } : undefined;
}
const NO_PICK_INFO: PickInfo = { authority: '', headers: {}, clientAddress: '', scheme: 'http', originalDst: undefined, hash: undefined };
/** Calls waiting for 'drain' (a WeakSet, so a call object carries no runner field). */
const BLOCKED = new WeakSet<UpstreamCall>();

function grpcStatusOf(h: IncomingHttpHeaders): number | undefined {
  const v = h['grpc-status'];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isInteger(n) ? n : undefined;
}

/** The outcome of an attempt whose answer was judged and not chosen (outlier detection sees the status). */
function answered(head: UpstreamHead, gs: number | undefined): AttemptOutcome {
  return { status: head.status, flag: undefined, grpcStatus: gs === undefined ? undefined : String(gs) };
}

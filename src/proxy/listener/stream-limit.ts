import http2, { type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Clock } from '../../core/clock.js';

/** More refusals than this (at least) within REFUSAL_WINDOW_MS on one connection end it. */
export const MAX_REFUSALS_PER_WINDOW = 100;
export const REFUSAL_WINDOW_MS = 1000;

/**
 * How many refusals within REFUSAL_WINDOW_MS a connection may cause: 100, or
 * for limits over 90 twice what one burst of up to 2 × limit + 10 concurrent
 * streams is refused (limit + 10), so that such a burst and the transparent
 * retry of its refused streams never end the connection.
 */
export function refusalBudget(maxStreams: number): number {
  return Math.max(MAX_REFUSALS_PER_WINDOW, 2 * (maxStreams + 10));
}

export interface StreamLimitEvents {
  /** A stream over the limit was refused with RST_STREAM(REFUSED_STREAM). */
  onRefused(): void;
  /** The connection refused too many streams too fast and was ended with GOAWAY(ENHANCE_YOUR_CALM). */
  onFlood(): void;
}

/**
 * `limits.maxConcurrentStreams` of one downstream HTTP/2 connection, enforced
 * per stream: a stream past the limit is refused with RST_STREAM
 * (REFUSED_STREAM), which tells the client the request was not processed and
 * may be retried (RFC 9113 §8.7; gRPC clients retry it transparently), while
 * the connection and its other streams go on. nghttp2 does not know the
 * limit (settings-handshake.ts explains why), so this is the only check.
 *
 * A client that keeps opening streams past the limit is cut off: more than
 * refusalBudget() refusals within REFUSAL_WINDOW_MS end the connection with
 * GOAWAY(ENHANCE_YOUR_CALM), which also bounds the work a flood of refused
 * streams can cause.
 */
export class StreamLimiter {
  private readonly admitted = new Set<ServerHttp2Stream>();
  /** Monotonic times of the recent refusals, oldest first. */
  private readonly refusals: number[] = [];
  private flooded = false;
  private readonly budget: number;

  constructor(
    private readonly session: ServerHttp2Session,
    private readonly maxStreams: number,
    private readonly clock: Clock,
    private readonly events: StreamLimitEvents,
  ) {
    this.budget = refusalBudget(maxStreams);
  }

  /** Whether the connection was ended for refusing too much. */
  get endedByFlood(): boolean {
    return this.flooded;
  }

  /**
   * Called on each new stream ('stream' event): true when it may be served;
   * false when it was refused (or the connection was ended).
   */
  admit(stream: ServerHttp2Stream): boolean {
    if (this.admitted.size >= this.maxStreams) this.prune();
    if (this.admitted.size < this.maxStreams) {
      this.admitted.add(stream);
      stream.once('close', () => this.admitted.delete(stream));
      return true;
    }
    this.refuse(stream);
    return false;
  }

  /**
   * Node emits 'stream' on a later tick than the frames that opened it, and
   * 'close' of a stream later than nghttp2 closed it; `closed` is set at once.
   * Reading it here means a stream the client already saw finish never holds
   * a place a compliant client is about to reuse.
   */
  private prune(): void {
    for (const s of this.admitted) if (s.closed || s.destroyed) this.admitted.delete(s);
  }

  private refuse(stream: ServerHttp2Stream): void {
    stream.on('error', noop);
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    this.events.onRefused();
    const now = this.clock.monotonicMs();
    this.refusals.push(now);
    while (this.refusals.length > 0 && this.refusals[0]! <= now - REFUSAL_WINDOW_MS) this.refusals.shift();
    if (this.refusals.length > this.budget && !this.flooded) {
      this.flooded = true;
      this.events.onFlood();
      // destroy(null, code): a GOAWAY with `code` and no 'error' event (an
      // undefined first argument would reset the code to NO_ERROR).
      const destroy = this.session.destroy as (this: ServerHttp2Session, e: Error | null, code: number) => void;
      destroy.call(this.session, null, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    }
  }
}

function noop(): void {}

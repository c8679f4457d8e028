import http2, { type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Clock } from '../../core/clock.js';
import type { IdleTimeout } from '../http/idle-timeout.js';

/** More abuse events (refusals, early resets) than this (at least) within REFUSAL_WINDOW_MS on one connection end it. */
export const MAX_REFUSALS_PER_WINDOW = 100;
export const REFUSAL_WINDOW_MS = 1000;

/**
 * How many abuse events (refused streams and streams reset before their
 * response began) within REFUSAL_WINDOW_MS a connection may cause: 100, or
 * for limits over 90 twice what one burst of up to 2 × limit + 10 concurrent
 * streams is refused (limit + 10), so that such a burst and the transparent
 * retry of its refused streams never end the connection.
 */
export function refusalBudget(maxStreams: number): number {
  return Math.max(MAX_REFUSALS_PER_WINDOW, 2 * (maxStreams + 10));
}

/**
 * Of that budget, early resets alone may spend at most this many per window,
 * whatever the stream limit: an ordinary burst over the limit is refused,
 * not reset, so it never comes near this, while a rapid-reset attack is
 * answered long before nghttp2's own limit (about 1,000 resets, then
 * GOAWAY(INTERNAL_ERROR)).
 */
export const MAX_RESETS_PER_WINDOW = 200;

/**
 * Where a stream the client reset early was caught: 'before_dispatch' – it
 * was already reset when Node delivered it (HEADERS and RST_STREAM in one
 * read), so nothing was done for it; 'before_response' – it was being served
 * and closed with a reset before any response headers went out.
 */
export type EarlyReset = 'before_dispatch' | 'before_response';

export type FloodKind = 'refused' | 'reset';

export interface StreamLimitEvents {
  /** A stream over the limit was refused with RST_STREAM(REFUSED_STREAM). */
  onRefused(): void;
  /** A stream was reset before its response began (the rapid-reset pattern, CVE-2023-44487). */
  onReset?(stage: EarlyReset): void;
  /**
   * The connection spent its abuse budget and was ended with
   * GOAWAY(ENHANCE_YOUR_CALM); `kind` is what spent the last of it.
   */
  onFlood(kind: FloodKind): void;
}

/**
 * `limits.maxConcurrentStreams` of one downstream HTTP/2 connection, enforced
 * per stream: a stream past the limit is refused with RST_STREAM
 * (REFUSED_STREAM), which tells the client the request was not processed and
 * may be retried (RFC 9113 §8.7; gRPC clients retry it transparently), while
 * the connection and its other streams go on. nghttp2 does not know the
 * limit (settings-handshake.ts explains why), so this is the only check.
 *
 * One abuse budget per connection bounds the work a client can cause without
 * ever getting a response: refused streams and streams reset before their
 * response began (HTTP/2 rapid reset, CVE-2023-44487) both spend it. More
 * than refusalBudget() of them, or more than MAX_RESETS_PER_WINDOW resets,
 * within REFUSAL_WINDOW_MS end the connection
 * with GOAWAY(ENHANCE_YOUR_CALM) and destroy it once the GOAWAY is written,
 * so nothing more is read from it; streams of the last read are dropped
 * unserved. A stream already reset when it would be served is not served
 * (no upstream stream, no access-log line); see admit().
 */
export class StreamLimiter {
  private readonly admitted = new Set<ServerHttp2Stream>();
  /** Admitted streams waiting for the end of the read that delivered them, with what serves each. */
  private unserved = new Map<ServerHttp2Stream, () => void>();
  /** Streams handed to their serve(): a reset of one of them before its response spends the budget. */
  private readonly served = new WeakSet<ServerHttp2Stream>();
  private flushScheduled = false;
  /** Monotonic times of the recent abuse events, oldest first. */
  private readonly spent: number[] = [];
  /** The same for early resets alone. */
  private readonly resets: number[] = [];
  private flooded = false;
  private readonly budget: number;

  constructor(
    private readonly session: ServerHttp2Session,
    private readonly maxStreams: number,
    private readonly clock: Clock,
    private readonly events: StreamLimitEvents,
    /** Counts the admitted streams for the connection's idle timeout. */
    private readonly idle?: IdleTimeout,
  ) {
    this.budget = refusalBudget(maxStreams);
    const limiter = this;
    this.onClose = function (this: ServerHttp2Stream) {
      limiter.closed(this);
    };
  }

  /** Whether the connection was ended for spending its abuse budget. */
  get endedByFlood(): boolean {
    return this.flooded;
  }

  /**
   * Called on each new stream ('stream' event): refuses it over the limit,
   * else calls `serve` once the read that delivered it has been processed,
   * unless the client reset it meanwhile or the connection was ended.
   *
   * nghttp2 hands Node every frame of one socket read in a row, and Node
   * emits 'stream' (and runs nextTicks and microtasks) for a HEADERS frame
   * before it processes a RST_STREAM that follows in the same read. Served at
   * once, a HEADERS + RST_STREAM pair got a full exchange (upstream stream,
   * access-log line) for a stream already cancelled; a setImmediate runs
   * after the whole read, when the reset is visible (`closed`, `rstCode`).
   * One immediate serves every stream admitted since the last one, and one
   * 'close' listener per limiter serves every stream: what an attack stream
   * costs here is two Set/Map entries and two listener slots.
   * (A request already ended then has its 'end' emitted again for serve().)
   * This also bounds the work of one read: if its resets spent the budget,
   * none of its streams is served.
   */
  admit(stream: ServerHttp2Stream, serve: () => void): void {
    this.sweep();
    if (!this.live()) return void stream.on('error', noop);
    if (this.admitted.size >= this.maxStreams) this.prune();
    if (this.admitted.size >= this.maxStreams) return this.refuse(stream);
    // A stream's errors (its connection ended, say) end in 'close'; this listener, kept for the stream's
    // life, is the one that keeps them from throwing (codec/h2-stream.ts adds none of its own).
    stream.on('error', noop);
    this.admitted.add(stream);
    this.idle?.opened();
    this.unserved.set(stream, serve);
    // 'close' is emitted once; on() spares the wrapper once() allocates per stream.
    stream.on('close', this.onClose);
    // One immediate per read, not per stream: it runs after the whole read.
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Serves the streams of the reads since the last flush that are still wanted. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    const batch = this.unserved;
    this.unserved = new Map();
    for (const [stream, serve] of batch) {
      if (!this.live()) return;
      if (isGone(stream)) {
        this.resetBeforeDispatch();
        continue;
      }
      this.served.add(stream);
      // A request whose END_STREAM came in the same read with no body bytes
      // has already emitted 'end' (Node reads 0 bytes at EOF), before anyone
      // listened: the listeners serve() attached get it now.
      const endedUnheard = stream.readableEnded;
      serve();
      if (endedUnheard) stream.emit('end');
    }
  };

  /** 'close' of an admitted stream: one function per limiter, the stream is `this` (as EventEmitter calls it). */
  private readonly onClose: (this: ServerHttp2Stream) => void;

  private closed(stream: ServerHttp2Stream): void {
    this.admitted.delete(stream);
    this.idle?.closed();
    if (this.served.has(stream) && stream.rstCode && !stream.headersSent && this.live()) {
      this.events.onReset?.('before_response');
      this.spend('reset');
    }
  }

  /**
   * Counts the streams of this read already reset, at the next stream of the
   * same read: a read of thousands of HEADERS + RST_STREAM pairs spends the
   * budget (and ends the connection) part-way through instead of at the end
   * of the read. nghttp2 still parses the rest of that read, so with over
   * 1,000 pairs in it its own reset limit may queue GOAWAY(INTERNAL_ERROR)
   * ahead of ours; no stream of the read is served either way.
   */
  private sweep(): void {
    for (const s of this.unserved.keys()) {
      if (!this.live()) return;
      if (isGone(s)) {
        this.unserved.delete(s);
        this.resetBeforeDispatch();
      }
    }
  }

  private resetBeforeDispatch(): void {
    this.events.onReset?.('before_dispatch');
    this.spend('reset');
  }

  private live(): boolean {
    return !this.flooded && !this.session.destroyed;
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
    this.spend('refused');
  }

  private spend(kind: FloodKind): void {
    const now = this.clock.monotonicMs();
    const over = inWindow(this.spent, now) > this.budget;
    const overResets = kind === 'reset' && inWindow(this.resets, now) > MAX_RESETS_PER_WINDOW;
    if ((over || overResets) && !this.flooded) {
      this.flooded = true;
      this.events.onFlood(kind);
      goawayAndDestroy(this.session, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    }
  }
}

/**
 * Ends a session with GOAWAY(`code`): destroy(null, code) sends it with no
 * 'error' event (an undefined first argument would reset the code to
 * NO_ERROR); nghttp2 writes the GOAWAY before the socket goes, and nothing
 * more is read.
 */
export function goawayAndDestroy(session: ServerHttp2Session, code: number): void {
  const destroy = session.destroy as (this: ServerHttp2Session, e: Error | null, code: number) => void;
  destroy.call(session, null, code);
}

/** Records an event at `now` in `times` and returns how many are within REFUSAL_WINDOW_MS. */
function inWindow(times: number[], now: number): number {
  times.push(now);
  while (times.length > 0 && times[0]! <= now - REFUSAL_WINDOW_MS) times.shift();
  return times.length;
}

/** A stream the client already reset (or that closed) before anyone looked at it. */
function isGone(stream: ServerHttp2Stream): boolean {
  return stream.closed || stream.destroyed || !!stream.rstCode;
}

function noop(): void {}

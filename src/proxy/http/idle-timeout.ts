import type { Http2Session } from 'node:http2';
import type { Clock, Timer } from '../../core/clock.js';

/**
 * An HTTP/2 connection's idle timeout as Envoy defines `idle_timeout`: the
 * time with no active streams. After `ms` without one, `onIdle` runs once
 * (the owner closes the session gracefully). 0 turns it off.
 *
 * Why not node:http2's `session.setTimeout`: that timer means "no frame
 * read or written", so Node refreshes it (`timer.refresh()`, a libuv clock
 * read) for every frame in either direction: ~5 % of the sidecar's CPU when
 * relaying a server stream, ~1 % of a unary call. Here the owner counts
 * streams (`opened`/`closed`, a counter each) and the clock is read once
 * when the last stream of a busy spell closes; the timer only wakes once per
 * `ms` while streams are open, to look again.
 *
 * A long-lived stream that is quiet (a watch waiting for changes) keeps its
 * connection, as in Envoy, where node:http2's timer closed the session under
 * it after `ms` without a frame. Cancelled when the session closes
 * (`bindTo`), so a closed session is not held by its timer until it fires.
 */
export class IdleTimeout {
  private active = 0;
  private idleSince: number;
  private timer: Timer | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly ms: number,
    private readonly onIdle: () => void,
  ) {
    this.idleSince = clock.monotonicMs();
    if (ms > 0) this.timer = clock.setTimer(ms, this.check);
  }

  /** Cancels the timer when `session` closes, however it closes. */
  bindTo(session: Http2Session): this {
    session.once('close', () => this.cancel());
    return this;
  }

  /** A stream of the connection opened. */
  opened(): void {
    this.active++;
  }

  /** A stream `opened` before has closed. */
  closed(): void {
    if (--this.active === 0 && this.timer !== undefined) this.idleSince = this.clock.monotonicMs();
  }

  /** Streams opened and not yet closed. */
  get activeStreams(): number {
    return this.active;
  }

  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private readonly check = (): void => {
    if (this.timer === undefined) return;
    if (this.active > 0) {
      this.timer = this.clock.setTimer(this.ms, this.check);
      return;
    }
    const idleFor = this.clock.monotonicMs() - this.idleSince;
    if (idleFor >= this.ms) {
      this.timer = undefined;
      this.onIdle();
    } else {
      this.timer = this.clock.setTimer(this.ms - idleFor, this.check);
    }
  };
}

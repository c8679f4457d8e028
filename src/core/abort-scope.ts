import type { Clock, Timer } from './clock.js';

export type AbortListener<R> = (reason: R) => void;

/**
 * The cancellation of one unit of work (on the data path: one HTTP exchange):
 * the client going away, the gRPC deadline and the route timeout all end it
 * through `abort(reason)`, once, and everything working for the exchange
 * (forwarders, gRPC calls, filters) listens on the same scope.
 *
 * Why not an AbortController per exchange: on Node 20 here creating one costs
 * several microseconds (EventTarget machinery), a large share of the ≤ 100 µs
 * a proxied request may cost. A scope is one small object with at most a few
 * listeners; `signal` builds a real AbortSignal on first use, for APIs that
 * take one (fetch, jose, ioredis commands), and follows the scope from then on.
 *
 * States: open → aborted (with a reason) | disposed. `dispose()` (the exchange
 * finished normally) cancels the deadline and drops the listeners without
 * calling them.
 */
export class AbortScope<R extends string = string> {
  private first: AbortListener<R> | undefined;
  private rest: AbortListener<R>[] | undefined;
  private timer: Timer | undefined;
  private deadlineAtMs = Infinity;
  private controller: AbortController | undefined;
  private state: 0 | 1 | 2 = 0; // open | aborted | disposed
  reason: R | undefined;

  get aborted(): boolean {
    return this.state === 1;
  }

  /** Whether the scope is still open (neither aborted nor disposed). */
  get open(): boolean {
    return this.state === 0;
  }

  /** Calls `fn` once when the scope aborts (at once if it already has). */
  onAbort(fn: AbortListener<R>): void {
    if (this.state === 1) return fn(this.reason!);
    if (this.state === 2) return;
    if (this.first === undefined) this.first = fn;
    else (this.rest ??= []).push(fn);
  }

  abort(reason: R): void {
    if (this.state !== 0) return;
    this.state = 1;
    this.reason = reason;
    this.timer?.cancel();
    this.timer = undefined;
    const first = this.first;
    const rest = this.rest;
    this.first = undefined;
    this.rest = undefined;
    // Every listener runs even if one throws (each owns a resource to release);
    // the first error is rethrown afterwards so a bug still surfaces.
    let error: unknown;
    let failed = false;
    const call = (fn: AbortListener<R>): void => {
      try {
        fn(reason);
      } catch (err) {
        if (!failed) error = err;
        failed = true;
      }
    };
    if (first) call(first);
    if (rest) for (const fn of rest) call(fn);
    this.controller?.abort(reason);
    if (failed) throw error;
  }

  /**
   * Aborts with `reason` after `ms` (> 0) on `clock`, unless an earlier
   * deadline is already armed: the shortest deadline wins, whoever sets it.
   */
  deadline(clock: Clock, ms: number, reason: R): void {
    if (this.state !== 0 || !(ms > 0)) return;
    const at = clock.monotonicMs() + ms;
    if (at >= this.deadlineAtMs) return;
    this.deadlineAtMs = at;
    this.timer?.cancel();
    this.timer = clock.setTimer(ms, () => {
      this.timer = undefined;
      this.abort(reason);
    });
  }

  /** Milliseconds left before the armed deadline (Infinity when none): a retry's grpc-timeout. */
  remainingMs(clock: Clock): number {
    return this.deadlineAtMs === Infinity ? Infinity : this.deadlineAtMs - clock.monotonicMs();
  }

  /** The exchange is over: no deadline, no listener will run. */
  dispose(): void {
    if (this.state !== 0) return;
    this.state = 2;
    this.timer?.cancel();
    this.timer = undefined;
    this.first = undefined;
    this.rest = undefined;
  }

  /** A standard AbortSignal that aborts with this scope (built on first use). */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.state === 1) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }
}

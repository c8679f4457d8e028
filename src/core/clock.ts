/**
 * Time source injected into everything that waits: deadlines, keep-alives,
 * detection timeouts, drain, backoff. Tests pass a FakeClock (test/support) and
 * advance it instead of sleeping.
 */
export interface Timer {
  /** Cancels the timer; safe to call more than once or after it fired. */
  cancel(): void;
}

export interface Clock {
  /** Wall-clock milliseconds since the epoch (for logs and timestamps). */
  nowMs(): number;
  /** Monotonic milliseconds with sub-millisecond precision (for durations). */
  monotonicMs(): number;
  /** Runs fn once after delayMs unless cancelled. The timer never keeps the process alive. */
  setTimer(delayMs: number, fn: () => void): Timer;
}

class NodeTimer implements Timer {
  constructor(private readonly handle: NodeJS.Timeout) {}
  cancel(): void {
    clearTimeout(this.handle);
  }
}

export function systemClock(): Clock {
  return {
    nowMs: () => Date.now(),
    monotonicMs: () => performance.now(),
    setTimer(delayMs, fn) {
      const h = setTimeout(fn, delayMs);
      h.unref();
      return new NodeTimer(h);
    },
  };
}

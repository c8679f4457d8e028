import type { Clock, Timer } from './clock.js';

/**
 * A connect timeout that an event-loop stall cannot fake. After a stall
 * longer than the timeout, Node runs the due timer (timers phase) before the
 * poll phase that would deliver a connect the kernel completed long ago, so a
 * plain timer fails healthy connections (seen: a WebSocket upgrade refused
 * UF in a loaded soak run). The expiry is therefore judged one setImmediate
 * later — after that poll phase — and only if `connected()` is still false.
 */
export function connectDeadline(clock: Clock, ms: number, connected: () => boolean, onTimeout: () => void): Timer {
  let cancelled = false;
  const t = clock.setTimer(ms, () => {
    setImmediate(() => {
      if (!cancelled && !connected()) onTimeout();
    });
  });
  return {
    cancel() {
      cancelled = true;
      t.cancel();
    },
  };
}

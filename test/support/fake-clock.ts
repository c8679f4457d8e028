import type { Clock, Timer } from '../../src/core/clock.js';

/** A Clock whose time moves only when a test calls advance(). */
export class FakeClock implements Clock {
  private now = 1_700_000_000_000;
  private mono = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  nowMs(): number {
    return this.now;
  }

  monotonicMs(): number {
    return this.mono;
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    const id = ++this.seq;
    this.timers.set(id, { at: this.mono + Math.max(0, delayMs), fn });
    return { cancel: () => void this.timers.delete(id) };
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const target = this.mono + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= target && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.now += next[1].at - this.mono;
      this.mono = next[1].at;
      next[1].fn();
    }
    this.now += target - this.mono;
    this.mono = target;
  }

  get pending(): number {
    return this.timers.size;
  }
}

import v8 from 'node:v8';
import vm from 'node:vm';
import type { Clock, Timer } from '../../core/clock.js';

export interface FloodGcOptions {
  readonly clock: Clock;
  /** A full collection; undefined: look one up on the first flood (fullGcFunction). Injected by tests. */
  readonly collect?: () => void;
  /** While floods go on, at most one collection per this many ms (default 1000). */
  readonly intervalMs?: number;
  /**
   * Returns the allocator's free pages to the kernel after each collection (the native addon's
   * mallocTrim; absent without it: the arena then stays at its peak size, ready for the next flood).
   */
  readonly trim?: () => unknown;
  /** Told of each collection and what it took (a counter, a histogram). */
  readonly onCollect?: (ms: number) => void;
}

/**
 * A full garbage collection after HTTP/2 floods (rapid reset, refused-stream
 * floods), at most once a second while they last and once after the last.
 *
 * A flood connection is cut off within a few ms, but every stream it opened
 * left native memory behind — nghttp2 header buffers, external strings,
 * ~200 bytes a stream — that is freed only when a full GC collects the JS
 * objects holding it. V8 does not count that memory, so under a flood it
 * starts no full GC, and glibc grows its arena by tens of MiB it then keeps
 * (docs/benchmarks.md, "HTTP/2 rapid reset"). Collecting every second while
 * connections are being GOAWAY'd keeps the arena at its working size; a
 * collection of the sidecar's heap takes a few ms, a small price next to
 * the flood itself, and nothing runs when there is no flood.
 */
export class FloodGc {
  private timer: Timer | undefined;
  private lastFloodMs = -Infinity;
  private scheduledAtMs = 0;
  private collect: (() => void) | undefined;
  private looked = false;
  private readonly intervalMs: number;

  constructor(private readonly opts: FloodGcOptions) {
    this.collect = opts.collect;
    this.looked = opts.collect !== undefined;
    this.intervalMs = opts.intervalMs ?? 1000;
  }

  /** A connection was cut off for a flood. */
  noteFlood(): void {
    this.lastFloodMs = this.opts.clock.monotonicMs();
    if (this.timer !== undefined) return;
    if (!this.looked) {
      this.looked = true;
      this.collect = fullGcFunction();
    }
    if (this.collect === undefined) return;
    this.schedule();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private schedule(): void {
    this.scheduledAtMs = this.opts.clock.monotonicMs();
    this.timer = this.opts.clock.setTimer(this.intervalMs, () => this.fire());
  }

  private fire(): void {
    this.timer = undefined;
    const t0 = this.opts.clock.monotonicMs();
    this.collect!();
    this.opts.trim?.();
    this.opts.onCollect?.(this.opts.clock.monotonicMs() - t0);
    // Floods since this collection was scheduled: another one a second later (the last one finds none).
    if (this.lastFloodMs >= this.scheduledAtMs) this.schedule();
  }
}

/**
 * A function that runs a full GC: `globalThis.gc` under --expose-gc, else the
 * same function obtained at run time (the flag set now, read from a new
 * context, as the `expose-gc` package does). Only called on the first flood:
 * a sidecar that never sees one never changes a V8 flag.
 */
export function fullGcFunction(): (() => void) | undefined {
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === 'function') return own as () => void;
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

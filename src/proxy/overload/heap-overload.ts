import v8 from 'node:v8';
import type { Clock, Timer } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';

/** The V8 heap now: bytes in use and the limit the process dies at. */
export interface HeapSample {
  readonly used: number;
  readonly limit: number;
}

export type HeapReader = () => HeapSample;

/** The process's own heap, from v8.getHeapStatistics(). */
export function v8Heap(): HeapSample {
  const h = v8.getHeapStatistics();
  return { used: h.used_heap_size, limit: h.heap_size_limit };
}

export const DEFAULT_MAX_HEAP_FRACTION = 0.9;
/** How far below the overload watermark the heap must fall before new work is taken again. */
export const RESUME_GAP = 0.05;
export const DEFAULT_SAMPLE_MS = 250;

/** What the data path reads: whether new work is refused now. */
export interface OverloadState {
  readonly overloaded: boolean;
}

export interface OverloadEvents {
  /** The state changed; `fraction` is the heap use that changed it. */
  onTransition(overloaded: boolean, fraction: number): void;
  /** Every sample (for the heap-use gauge). */
  onSample?(fraction: number): void;
}

export interface HeapOverloadOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events: OverloadEvents;
  /** Above this fraction of the heap limit, new work is refused (default 0.9). */
  readonly maxHeapFraction?: number;
  /** Below this fraction, new work is taken again (default maxHeapFraction − 0.05). */
  readonly resumeHeapFraction?: number;
  readonly sampleMs?: number;
  /** Injected so tests drive the state without allocating gigabytes. */
  readonly readHeap?: HeapReader;
}

/**
 * Heap-based load shedding. Sampled on the injected clock: above the
 * overload watermark the sidecar stops accepting connections and answers
 * new requests and streams with the `overload` local reply (LO: 503 /
 * RESOURCE_EXHAUSTED), while work in flight finishes; it takes new work again
 * only below the lower resume watermark, so it does not flap around one
 * value. A process that runs out of heap dies with every request it holds;
 * refusing new ones early lets the ones in flight complete and tells clients
 * to go elsewhere.
 */
export class HeapOverload implements OverloadState {
  private state = false;
  private timer: Timer | undefined;
  private readonly max: number;
  private readonly resume: number;
  private readonly readHeap: HeapReader;

  constructor(private readonly o: HeapOverloadOptions) {
    this.max = o.maxHeapFraction ?? DEFAULT_MAX_HEAP_FRACTION;
    this.resume = o.resumeHeapFraction ?? Math.max(0, this.max - RESUME_GAP);
    if (!(this.max > 0 && this.max <= 1)) throw new RangeError(`max heap fraction must be in (0, 1], got ${this.max}`);
    if (!(this.resume >= 0 && this.resume < this.max)) throw new RangeError(`resume heap fraction must be in [0, ${this.max}), got ${this.resume}`);
    this.readHeap = o.readHeap ?? v8Heap;
  }

  get overloaded(): boolean {
    return this.state;
  }

  get watermarks(): { readonly overload: number; readonly resume: number } {
    return { overload: this.max, resume: this.resume };
  }

  /** Samples now and then every sampleMs until stop(). */
  start(): void {
    this.stop();
    const tick = (): void => {
      this.sample();
      this.timer = this.o.clock.setTimer(this.o.sampleMs ?? DEFAULT_SAMPLE_MS, tick);
    };
    tick();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** One sample; returns the heap fraction in use. */
  sample(): number {
    const h = this.readHeap();
    const fraction = h.limit > 0 ? h.used / h.limit : 0;
    this.o.events.onSample?.(fraction);
    const next = this.state ? fraction > this.resume : fraction > this.max;
    if (next !== this.state) {
      this.state = next;
      this.o.events.onTransition(next, fraction);
      const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
      if (next) this.o.logger.warn({ heap: pct(fraction), watermark: pct(this.max) }, 'overloaded: refusing new connections and requests');
      else this.o.logger.info({ heap: pct(fraction), watermark: pct(this.resume) }, 'overload over: taking new work again');
    }
    return fraction;
  }
}

import type { ExchangeRecord } from './exchange-record.js';

/** One tapped request, as `/tap` sends it (headers already redacted like the access log's). */
export type TapEvent = Omit<ExchangeRecord, 'bytes_in' | 'bytes_out' | 'source_principal' | 'upstream_principal'> & { readonly ts: number; readonly listener: string };

export interface TapFilter {
  readonly route?: string;
  readonly pathPrefix?: string;
  /** Events to send before the subscription ends (0: unbounded). */
  readonly max?: number;
}

/** Where a subscription's events go; `write` returns false when the consumer is behind (backpressure). */
export interface TapSink {
  write(event: TapEvent): boolean;
  /** The subscription is complete (max reached). */
  end(): void;
}

export const DEFAULT_TAP_BUFFER = 256;

/**
 * One subscriber: its filter, and a bounded buffer for when its consumer is
 * slower than the traffic. A full buffer drops the newest events and counts
 * them, so a slow `outrigger tap` never holds memory or slows requests.
 */
export class TapSubscription {
  sent = 0;
  dropped = 0;
  private readonly buffer: TapEvent[] = [];
  private blocked = false;
  private ended = false;

  constructor(
    readonly filter: TapFilter,
    private readonly sink: TapSink,
    private readonly bufferLimit: number,
    private readonly onEnd: (s: TapSubscription) => void,
  ) {}

  matches(route: string, path: string): boolean {
    const f = this.filter;
    return (f.route === undefined || f.route === route) && (f.pathPrefix === undefined || path.startsWith(f.pathPrefix));
  }

  offer(e: TapEvent): void {
    if (this.ended) return;
    if (this.blocked || this.buffer.length > 0) {
      if (this.buffer.length >= this.bufferLimit) this.dropped++;
      else this.buffer.push(e);
      return;
    }
    this.send(e);
  }

  /** The consumer caught up (e.g. the response's 'drain'): send what was buffered. */
  drain(): void {
    this.blocked = false;
    while (!this.blocked && !this.ended && this.buffer.length > 0) this.send(this.buffer.shift()!);
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.buffer.length = 0;
    this.onEnd(this);
  }

  private send(e: TapEvent): void {
    this.sent++;
    this.blocked = !this.sink.write(e);
    const max = this.filter.max ?? 0;
    if (max > 0 && this.sent >= max) {
      this.close();
      this.sink.end();
    }
  }
}

/**
 * The `/tap` fan-out. `active` is the one check the request path makes: with
 * nobody listening, a finished exchange costs a boolean read and no event.
 */
export class TapHub {
  private readonly subs = new Set<TapSubscription>();
  active = false;

  constructor(private readonly bufferLimit = DEFAULT_TAP_BUFFER) {}

  subscribe(filter: TapFilter, sink: TapSink): TapSubscription {
    const s = new TapSubscription(filter, sink, this.bufferLimit, (x) => {
      this.subs.delete(x);
      this.active = this.subs.size > 0;
    });
    this.subs.add(s);
    this.active = true;
    return s;
  }

  get subscribers(): number {
    return this.subs.size;
  }

  /** Builds the event lazily: only when some subscriber's filter matches. */
  publish(route: string, path: string, build: () => TapEvent): void {
    let e: TapEvent | undefined;
    for (const s of this.subs) {
      if (!s.matches(route, path)) continue;
      e ??= build();
      s.offer(e);
    }
  }
}

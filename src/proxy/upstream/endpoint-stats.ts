import type { Clock } from '../../core/clock.js';

/** How an upstream attempt ended, as outlier detection and the metrics classify it. */
export interface AttemptOutcome {
  /** HTTP status relayed or replied (0: none). */
  readonly status: number;
  /** The local-reply flag when the sidecar answered itself (UF, UR, UT…). */
  readonly flag: string | undefined;
  /** grpc-status of the answer, when there was one. */
  readonly grpcStatus: string | undefined;
  /**
   * We dropped the attempt before it could answer (a hedge that lost, a
   * refused stream, the client going away before the response): not the
   * endpoint's doing, so neither a failure nor a latency sample.
   */
  readonly abandoned?: boolean;
}

/** One attempt in flight on one endpoint; `end` exactly once (later calls are ignored). */
export interface Attempt {
  end(outcome: AttemptOutcome): void;
}

/** Linkerd's defaults for the peak-EWMA estimate. */
export const DEFAULT_EWMA_DECAY_MS = 10_000;
export const DEFAULT_EWMA_RTT_MS = 30;

/**
 * The live counters of one endpoint: active requests and the peak-EWMA
 * latency estimate (the balancers read them at pick time), and totals for the
 * admin page. Owned by the ClusterRuntime, keyed by endpoint key, so they
 * survive every picker rebuilt on a health change.
 */
export class EndpointStats {
  active = 0;
  total = 0;
  failures = 0;
  /** Peak-EWMA round-trip estimate in ms, as of `rttAt` (monotonic ms). */
  rttMs: number;
  rttAt: number;
  /** Whether `rttMs` comes from a sample (otherwise it is the default). */
  sampled = false;

  constructor(
    readonly key: string,
    private readonly decayMs: number,
    defaultRttMs: number,
    now: number,
  ) {
    this.rttMs = defaultRttMs;
    this.rttAt = now;
  }

  /**
   * The estimate decayed to `now` as if a zero-latency sample had arrived
   * (tower's PeakEwma decays on read), so an endpoint that was slow once and
   * then got no traffic is tried again eventually.
   */
  estimate(now: number): number {
    const elapsed = now - this.rttAt;
    return elapsed <= 0 ? this.rttMs : this.rttMs * Math.exp(-elapsed / this.decayMs);
  }

  /** A peak jumps the estimate up at once; lower samples pull it down with weight by their age. */
  observeRtt(rttMs: number, now: number): void {
    if (rttMs > this.rttMs) this.rttMs = rttMs;
    else {
      const decay = Math.exp(-Math.max(0, now - this.rttAt) / this.decayMs);
      this.rttMs = this.rttMs * decay + rttMs * (1 - decay);
    }
    this.rttAt = now;
    this.sampled = true;
  }
}

/** Whether an attempt failed from the balancer's point of view (5xx or a local upstream failure). */
export function isFailure(o: AttemptOutcome): boolean {
  if (o.abandoned === true) return false;
  return o.status >= 500 || o.status === 0 || (o.flag !== undefined && o.flag.startsWith('U'));
}

/** Listener of finished attempts (outlier detection, metrics). */
export type AttemptListener = (key: string, outcome: AttemptOutcome, rttMs: number) => void;

/** The EndpointStats of one cluster by endpoint key. */
export class EndpointStatsTable {
  private readonly byKey = new Map<string, EndpointStats>();
  private readonly listeners: AttemptListener[] = [];
  private started = false;
  /** Attempts in flight over all endpoints (circuit breakers). */
  activeTotal = 0;

  constructor(
    private readonly clock: Clock,
    private readonly decayMs = DEFAULT_EWMA_DECAY_MS,
    private readonly defaultRttMs = DEFAULT_EWMA_RTT_MS,
  ) {}

  of(key: string): EndpointStats {
    let s = this.byKey.get(key);
    if (s === undefined) {
      s = new EndpointStats(key, this.decayMs, this.defaultRttMs, this.clock.monotonicMs());
      this.byKey.set(key, s);
    }
    return s;
  }

  get(key: string): EndpointStats | undefined {
    return this.byKey.get(key);
  }

  /** Whether any attempt has started on this cluster. */
  get hadTraffic(): boolean {
    return this.started;
  }

  onAttempt(fn: AttemptListener): void {
    this.listeners.push(fn);
  }

  /** Counts an attempt on `key` as active until its `end`, which records latency and outcome. */
  begin(key: string): Attempt {
    const s = this.of(key);
    const clock = this.clock;
    const started = clock.monotonicMs();
    s.active++;
    this.activeTotal++;
    this.started = true;
    let ended = false;
    return {
      end: (outcome) => {
        if (ended) return;
        ended = true;
        const now = clock.monotonicMs();
        s.active--;
        this.activeTotal--;
        const rtt = now - started;
        if (outcome.abandoned !== true) {
          s.total++;
          if (isFailure(outcome)) s.failures++;
          s.observeRtt(rtt, now);
        }
        for (const l of this.listeners) l(key, outcome, rtt);
      },
    };
  }
}

import type { Clock, Timer } from '../../../core/clock.js';
import type { ClusterRuntime } from '../cluster.js';
import type { AttemptOutcome } from '../endpoint-stats.js';
import { classify } from './classify.js';
import type { OutlierSettings } from './outlier-settings.js';

interface EndpointRecord {
  consecutive5xx: number;
  consecutiveGateway: number;
  consecutiveLocal: number;
  /** This interval's counts, for success rate and failure percentage. */
  ok: number;
  failed: number;
  /** Times ejected; the next ejection lasts base × (this + 1). Decays by one per clean interval. */
  ejections: number;
  ejectedTimer: Timer | undefined;
}

export type EjectionReason = 'consecutive_5xx' | 'consecutive_gateway_failure' | 'consecutive_local_origin_failure' | 'success_rate' | 'failure_percentage';
export type EjectionListener = (cluster: string, endpoint: string, reason: EjectionReason) => void;

/**
 * Passive outlier detection of one cluster (Envoy's): watches every finished
 * attempt, ejects an endpoint after too many consecutive failures or, each
 * `interval`, when its success rate is a statistical outlier or its failure
 * percentage is too high. An ejection lasts `baseEjectionTime` × the number
 * of times the endpoint was ejected (at most `maxEjectionTime`) and ends on
 * its own; no new ejection happens while `maxEjectionPercent` of the
 * endpoints are out. Like the health checkers it outlives config versions
 * (`attach`), so an ejection survives an unrelated config change.
 */
export class OutlierDetector {
  private readonly records = new Map<string, EndpointRecord>();
  private runtime: ClusterRuntime | undefined;
  private interval: Timer | undefined;
  private stopped = false;

  constructor(
    readonly cluster: string,
    readonly settings: OutlierSettings,
    private readonly clock: Clock,
    private readonly onEject: EjectionListener = () => undefined,
  ) {
    this.scheduleInterval();
  }

  attach(runtime: ClusterRuntime): void {
    this.runtime = runtime;
    const keys = new Set(runtime.endpoints.map((e) => e.key));
    for (const [key, r] of this.records) {
      if (keys.has(key)) continue;
      r.ejectedTimer?.cancel();
      this.records.delete(key);
    }
    for (const e of runtime.endpoints) if (!this.records.has(e.key)) this.records.set(e.key, fresh());
    runtime.stats.onAttempt((key, outcome) => {
      this.observe(key, outcome); // attempts still finishing on an older version count too
    });
    this.publish();
  }

  isEjected(key: string): boolean {
    return this.records.get(key)?.ejectedTimer !== undefined;
  }

  ejectionsOf(key: string): number {
    return this.records.get(key)?.ejections ?? 0;
  }

  stop(): void {
    this.stopped = true;
    this.interval?.cancel();
    for (const r of this.records.values()) r.ejectedTimer?.cancel();
    this.records.clear();
  }

  observe(key: string, outcome: AttemptOutcome): void {
    const r = this.records.get(key);
    if (r === undefined || this.stopped) return;
    const c = classify(outcome);
    if (c.ignored) return;
    if (c.is5xx) r.failed++;
    else r.ok++;
    r.consecutive5xx = c.is5xx ? r.consecutive5xx + 1 : 0;
    r.consecutiveGateway = c.gateway ? r.consecutiveGateway + 1 : 0;
    r.consecutiveLocal = c.localOrigin ? r.consecutiveLocal + 1 : 0;
    const s = this.settings;
    if (s.consecutive5xx > 0 && r.consecutive5xx >= s.consecutive5xx) this.eject(key, r, 'consecutive_5xx');
    else if (s.consecutiveGatewayFailure > 0 && r.consecutiveGateway >= s.consecutiveGatewayFailure) this.eject(key, r, 'consecutive_gateway_failure');
    else if (s.consecutiveLocalOriginFailure > 0 && r.consecutiveLocal >= s.consecutiveLocalOriginFailure) {
      this.eject(key, r, 'consecutive_local_origin_failure');
    }
  }

  private eject(key: string, r: EndpointRecord, reason: EjectionReason): void {
    r.consecutive5xx = r.consecutiveGateway = r.consecutiveLocal = 0;
    if (r.ejectedTimer !== undefined) return;
    let out = 0;
    for (const x of this.records.values()) if (x.ejectedTimer !== undefined) out++;
    if ((out * 100) / this.records.size >= this.settings.maxEjectionPercent) return;
    r.ejections++;
    const ms = Math.min(this.settings.baseEjectionMs * r.ejections, this.settings.maxEjectionMs);
    r.ejectedTimer = this.clock.setTimer(ms, () => {
      r.ejectedTimer = undefined;
      this.publish();
    });
    this.onEject(this.cluster, key, reason);
    this.publish();
  }

  private scheduleInterval(): void {
    this.interval = this.clock.setTimer(this.settings.intervalMs, () => {
      if (this.stopped) return;
      this.evaluate();
      this.scheduleInterval();
    });
  }

  /** The interval's statistical checks, then a fresh interval. */
  private evaluate(): void {
    const s = this.settings;
    const volume = (min: number): [string, EndpointRecord][] => [...this.records].filter(([, r]) => r.ok + r.failed >= min);
    if (s.successRate) {
      const hosts = volume(s.successRate.requestVolume);
      if (hosts.length >= s.successRate.minimumHosts && hosts.length > 0) {
        const rates = hosts.map(([, r]) => (100 * r.ok) / (r.ok + r.failed));
        const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
        const stdev = Math.sqrt(rates.reduce((a, b) => a + (b - mean) ** 2, 0) / rates.length);
        const floor = mean - (s.successRate.stdevFactor / 1000) * stdev;
        hosts.forEach(([key, r], i) => rates[i]! < floor && this.eject(key, r, 'success_rate'));
      }
    }
    if (s.failurePercentage) {
      const hosts = volume(s.failurePercentage.requestVolume);
      if (hosts.length >= s.failurePercentage.minimumHosts) {
        for (const [key, r] of hosts) if ((100 * r.failed) / (r.ok + r.failed) >= s.failurePercentage.threshold) this.eject(key, r, 'failure_percentage');
      }
    }
    for (const r of this.records.values()) {
      if (r.ejectedTimer === undefined && r.ejections > 0 && r.failed === 0) r.ejections--;
      r.ok = r.failed = 0;
    }
  }

  private publish(): void {
    const out = new Set<string>();
    for (const [key, r] of this.records) if (r.ejectedTimer !== undefined) out.add(key);
    this.runtime?.setEjected(out);
  }
}

function fresh(): EndpointRecord {
  return { consecutive5xx: 0, consecutiveGateway: 0, consecutiveLocal: 0, ok: 0, failed: 0, ejections: 0, ejectedTimer: undefined };
}

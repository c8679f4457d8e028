import type { Clock, Timer } from '../../../core/clock.js';
import type { Random } from '../../../core/random.js';
import type { ClusterRuntime } from '../cluster.js';
import type { EndpointAddress } from '../endpoint.js';
import type { HealthCheckSettings } from './health-check-settings.js';
import type { ProbeResult } from './probes.js';

/** Active health state of one endpoint. */
export type ActiveHealth = 'pending' | 'healthy' | 'unhealthy';

interface EndpointCheck {
  ep: EndpointAddress;
  status: ActiveHealth;
  passes: number;
  failures: number;
  /** The last passing check said the endpoint is degraded. */
  degraded: boolean;
  timer: Timer | undefined;
  /** The probe in flight, cancelled on stop or removal. */
  cancel: (() => void) | undefined;
  removed: boolean;
}

/** Reported per finished check (metrics, tests). */
export type CheckListener = (cluster: string, endpoint: string, passed: boolean, status: ActiveHealth) => void;

/**
 * The active health checker of one cluster: checks each endpoint on its own
 * timer and connection, and hands the result (a set of endpoints failing
 * active checks) to the cluster's current ClusterRuntime, which rebuilds its
 * picker. It outlives config versions: `attach` points it at the cluster's
 * runtime of each new version and keeps the state of endpoints it already
 * knew.
 *
 * Envoy's semantics: a new endpoint is *pending* and in rotation until its
 * first check, which decides at once (pass: healthy, fail: unhealthy);
 * afterwards `unhealthyThreshold` consecutive failures take it out and
 * `healthyThreshold` consecutive passes bring it back. A check that has not
 * passed by `timeout` fails. While the cluster has never had a request,
 * checks run every `noTrafficInterval` instead of `interval`.
 */
export class ClusterHealthChecker {
  private readonly checks = new Map<string, EndpointCheck>();
  private runtime: ClusterRuntime | undefined;
  private stopped = false;
  /** Checks finished so far (tests wait on it after advancing the clock). */
  checksDone = 0;

  constructor(
    readonly cluster: string,
    readonly settings: HealthCheckSettings,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly onCheck: CheckListener = () => undefined,
  ) {}

  attach(runtime: ClusterRuntime): void {
    this.runtime = runtime;
    const keys = new Set(runtime.endpoints.map((e) => e.key));
    for (const [key, c] of this.checks) {
      if (keys.has(key)) continue;
      this.forget(c);
      this.checks.delete(key);
    }
    for (const ep of runtime.endpoints) {
      if (this.checks.has(ep.key)) continue;
      const c: EndpointCheck = { ep, status: 'pending', passes: 0, failures: 0, degraded: false, timer: undefined, cancel: undefined, removed: false };
      this.checks.set(ep.key, c);
      this.schedule(c, 0);
    }
    this.publish();
  }

  /** Checks started and not finished. */
  get inFlight(): number {
    let n = 0;
    for (const c of this.checks.values()) if (c.cancel !== undefined) n++;
    return n;
  }

  /** Active health by endpoint key. */
  statusOf(key: string): ActiveHealth | undefined {
    return this.checks.get(key)?.status;
  }

  stop(): void {
    this.stopped = true;
    for (const c of this.checks.values()) this.forget(c);
    this.checks.clear();
  }

  private forget(c: EndpointCheck): void {
    c.removed = true;
    c.timer?.cancel();
    c.cancel?.();
  }

  private schedule(c: EndpointCheck, delayMs: number): void {
    c.timer = this.clock.setTimer(delayMs, () => this.run(c));
  }

  private run(c: EndpointCheck): void {
    c.timer = undefined;
    if (c.removed || this.stopped) return;
    const probe = this.settings.probe(c.ep);
    c.cancel = probe.cancel;
    const timeout = this.clock.setTimer(this.settings.timeoutMs, probe.cancel);
    void probe.done.then((passed) => {
      timeout.cancel();
      c.cancel = undefined;
      if (c.removed || this.stopped) return;
      this.record(c, passed);
      this.schedule(c, this.nextDelay());
    });
  }

  private record(c: EndpointCheck, result: ProbeResult): void {
    this.checksDone++;
    const before = c.status;
    const wasDegraded = c.degraded;
    const passed = result !== false;
    if (passed) c.degraded = result === 'degraded';
    if (passed) {
      c.failures = 0;
      c.passes++;
      if (c.status === 'pending' || (c.status === 'unhealthy' && c.passes >= this.settings.healthyThreshold)) c.status = 'healthy';
    } else {
      c.passes = 0;
      c.failures++;
      if (c.status === 'pending' || (c.status === 'healthy' && c.failures >= this.settings.unhealthyThreshold)) c.status = 'unhealthy';
    }
    this.onCheck(this.cluster, c.ep.key, passed, c.status);
    if ((before === 'unhealthy') !== (c.status === 'unhealthy')) this.publish();
    else if (wasDegraded !== c.degraded) this.publishDegraded();
  }

  private nextDelay(): number {
    const s = this.settings;
    const base = this.runtime?.hadTraffic === false ? s.noTrafficIntervalMs : s.intervalMs;
    return base + (s.jitterMs > 0 ? this.random.next() * s.jitterMs : 0);
  }

  private publish(): void {
    const failing = new Set<string>();
    for (const [key, c] of this.checks) if (c.status === 'unhealthy') failing.add(key);
    this.runtime?.setActiveHealth(failing, this.degradedKeys());
  }

  /** Endpoints whose last passing check carried the degraded header (Envoy: degraded, used after the healthy ones). */
  private publishDegraded(): void {
    this.runtime?.setDegradedActive(this.degradedKeys());
  }

  private degradedKeys(): Set<string> {
    const degraded = new Set<string>();
    for (const [key, c] of this.checks) if (c.degraded && c.status !== 'unhealthy') degraded.add(key);
    return degraded;
  }
}

import type { Cluster, ClusterLoadAssignment, Endpoint } from '../../gen/outrigger/config/v1/cluster_pb.js';
import { Cluster_DiscoveryType, Cluster_UpstreamProtocol, Endpoint_HealthStatus } from '../../gen/outrigger/config/v1/cluster_pb.js';
import { durationMs } from '../../core/duration.js';
import { endpointKey, type EndpointAddress } from './endpoint.js';
import { policyOf, type PolicyDeps } from './lb/policies.js';
import {
  DEFAULT_HEALTHY_PANIC_THRESHOLD,
  DEFAULT_MIN_CLUSTER_SIZE,
  DEFAULT_MIN_RING_SIZE,
  DEFAULT_OVERPROVISIONING_FACTOR,
  type LocalityLbSettings,
  MAX_RING_SIZE,
  type EndpointHealth,
  type HealthView,
  type LbPolicy,
  type LbSettings,
  type PickInfo,
  type Picked,
  type Picker,
} from './lb/picker.js';
import { roundRobin } from './lb/round-robin.js';
import { upstreamTlsOf, type UpstreamTlsPolicy } from './upstream-tls.js';
import { buildPicker } from './lb/locality-picker.js';
import { inSubset, type EndpointSubset } from './lb/subset.js';
import { localityName, type LocalityName } from '../../core/locality.js';
import { systemClock } from '../../core/clock.js';
import { systemRandom } from '../../core/random.js';
import { DEFAULT_EWMA_DECAY_MS, DEFAULT_EWMA_RTT_MS, EndpointStatsTable, type Attempt } from './endpoint-stats.js';
import { retryAllowance, type RetryLimit } from './retry/retry-budget.js';
import type { RetryBudgetPlan } from './retry/retry-policy.js';

export type UpstreamProtocol = 'downstream' | 'h1' | 'h2';

/** `Cluster.circuitBreakers` with Envoy's defaults. */
export interface CircuitBreakerLimits {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

export const DEFAULT_CIRCUIT_BREAKERS: CircuitBreakerLimits = { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 };

/** The circuit-breaker limit a request would break. */
export type OverflowLimit = 'max_requests' | 'max_connections' | 'max_pending_requests';

export const DEFAULT_CONNECT_TIMEOUT_MS = 1000;
export const DEFAULT_MAX_IDLE_CONNECTIONS = 64;
export const DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS = 60_000;

/**
 * The runtime form of a Cluster for one config version: its endpoints, its
 * load-balancing policy and the current picker that policy built from the
 * endpoints and their health. A health change swaps in a new picker
 * (`setHealth`); a new endpoint set is a new config version, hence a new
 * ClusterRuntime.
 */
export class ClusterRuntime {
  private picker: Picker;
  private readonly policy: LbPolicy;
  private healthView: HealthView | undefined = undefined;
  private failedActive: ReadonlySet<string> = NO_KEYS;
  private ejected: ReadonlySet<string> = NO_KEYS;
  private degradedActive: ReadonlySet<string> = NO_KEYS;
  /** Active requests, latency and totals per endpoint key; outlives pickers. */
  readonly stats: EndpointStatsTable;
  /** `tls`: how upstream connections are secured (undefined: plaintext). Set by build(). */
  upstreamTls: UpstreamTlsPolicy | undefined = undefined;
  /** Attempts waiting for their upstream connection to be established (circuitBreakers.maxPendingRequests; upstream/attempt.ts). */
  pendingTotal = 0;
  /** Retries and hedged attempts in flight: from the decision to send one until it ends (circuitBreakers.maxRetries, retry budgets). */
  activeRetries = 0;
  /**
   * Route subsets asked for so far, by selector key: their endpoints (filtered
   * once: a new endpoint set is a new ClusterRuntime) and the policy's picker
   * over them, rebuilt with the cluster's on every health change.
   */
  private subsets: Map<string, SubsetState> | undefined = undefined;

  constructor(
    readonly name: string,
    readonly endpoints: readonly EndpointAddress[],
    readonly protocol: UpstreamProtocol,
    readonly connectTimeoutMs: number,
    readonly maxIdleConnections: number,
    readonly idleTimeoutMs: number,
    /** DISCOVERY_TYPE_ORIGINAL_DST: no endpoints; each connection or request names its own (original-dst.ts). */
    readonly originalDst = false,
    /**
     * ORIGINAL_DST only: whether a request on a connection that was not
     * redirected goes to its Host / :authority (`originalDst.useHostHeader`,
     * default true; false for inbound pass-through, where Host is the pod's own name).
     */
    readonly useHostHeader = true,
    policy: LbPolicy = roundRobin,
    readonly lb: LbSettings = defaultLbSettings({}),
    ewma: { decayMs: number; defaultRttMs: number } = { decayMs: DEFAULT_EWMA_DECAY_MS, defaultRttMs: DEFAULT_EWMA_RTT_MS },
    readonly limits: CircuitBreakerLimits = DEFAULT_CIRCUIT_BREAKERS,
    /** Endpoint health as discovery reported it (`Endpoint.healthStatus`); only non-healthy ones listed. */
    private readonly discovered: HealthView = new Map(),
  ) {
    this.policy = policy;
    this.stats = new EndpointStatsTable(lb.clock, ewma.decayMs, ewma.defaultRttMs);
    if (discovered.size > 0) this.healthView = discovered;
    this.picker = buildPicker(policy, endpoints, this.healthView, this);
  }

  static build(c: Cluster, cla: ClusterLoadAssignment | undefined, deps: PolicyDeps = {}): ClusterRuntime {
    const source: readonly Endpoint[] = takesLoadAssignment(c.type) ? (cla?.endpoints ?? []) : c.endpoints;
    const endpoints = source.map(toAddress);
    const rt = new ClusterRuntime(
      c.name,
      endpoints,
      protocolOf(c.protocol),
      durationMs(c.connectTimeout, DEFAULT_CONNECT_TIMEOUT_MS),
      c.maxIdleConnections || DEFAULT_MAX_IDLE_CONNECTIONS,
      durationMs(c.idleTimeout, DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS),
      c.type === Cluster_DiscoveryType.ORIGINAL_DST,
      c.originalDst?.useHostHeader ?? true,
      policyOf(c, deps),
      defaultLbSettings(deps, c),
      {
        decayMs: durationMs(c.peakEwma?.decay, DEFAULT_EWMA_DECAY_MS) || DEFAULT_EWMA_DECAY_MS,
        defaultRttMs: durationMs(c.peakEwma?.defaultRtt, DEFAULT_EWMA_RTT_MS),
      },
      limitsOf(c),
      discoveredHealth(source),
    );
    rt.upstreamTls = upstreamTlsOf(c.tls, c.name);
    return rt;
  }

  get policyName(): string {
    return this.policy.name;
  }

  /** Rebuilds the picker for new endpoint health (health checks, outlier ejection). */
  setHealth(health: HealthView): void {
    this.healthView = health;
    this.picker = buildPicker(this.policy, this.endpoints, health, this);
    if (this.subsets !== undefined) for (const st of this.subsets.values()) st.picker = this.subsetPicker(st.subset, st.endpoints);
  }

  /** Active health checks' verdict: these endpoints fail them (health/cluster-health-checker.ts). */
  setFailedActiveHealth(keys: ReadonlySet<string>): void {
    this.failedActive = keys;
    this.combineHealth();
  }

  /**
   * Active health checks that pass with the `x-envoy-degraded` header (or
   * `x-outrigger-degraded`): these endpoints are degraded.
   */
  setDegradedActive(keys: ReadonlySet<string>): void {
    if (keys.size === 0 && this.degradedActive.size === 0) return;
    this.degradedActive = keys;
    this.combineHealth();
  }

  /** Both verdicts of the active health checks at once (one picker rebuild). */
  setActiveHealth(failing: ReadonlySet<string>, degraded: ReadonlySet<string>): void {
    this.failedActive = failing;
    this.degradedActive = degraded;
    this.combineHealth();
  }

  /** Outlier detection's verdict: these endpoints are ejected for now. */
  setEjected(keys: ReadonlySet<string>): void {
    this.ejected = keys;
    this.combineHealth();
  }

  /** Admin label of one endpoint's health (docs/resilience.md). */
  healthLabelOf(key: string): 'healthy' | 'failed_active_hc' | 'outlier_ejected' | 'failed_eds_health' | 'draining' | 'degraded' {
    const d = this.discovered.get(key);
    if (d === 'draining') return 'draining';
    if (this.failedActive.has(key)) return 'failed_active_hc';
    if (this.ejected.has(key)) return 'outlier_ejected';
    if (d === 'unhealthy') return 'failed_eds_health';
    return d === 'degraded' || this.degradedActive.has(key) ? 'degraded' : 'healthy';
  }

  /** The current picker's priority loads and zone routing (undefined: one plain picker over the endpoints). */
  describeRouting(): unknown {
    return this.picker.describe?.();
  }

  /** Whether any request has used this cluster (health checks slow down to noTrafficInterval until then). */
  get hadTraffic(): boolean {
    return this.stats.hadTraffic;
  }

  private combineHealth(): void {
    const view = new Map<string, EndpointHealth>();
    for (const k of this.failedActive) view.set(k, 'unhealthy');
    for (const k of this.ejected) view.set(k, 'unhealthy');
    // Discovery's verdict stands whatever the checks say; DRAINING wins over everything.
    for (const [k, h] of this.discovered) if (h === 'draining' || !view.has(k)) view.set(k, h);
    for (const k of this.degradedActive) if (!view.has(k)) view.set(k, 'degraded');
    this.setHealth(view);
  }

  /** The health the current picker was built from (undefined: all healthy). */
  get health(): HealthView | undefined {
    return this.healthView;
  }

  /** Counts one attempt on `endpointKey` as active until its `end` (which records latency and outcome). */
  beginAttempt(endpointKey: string): Attempt {
    // ORIGINAL_DST destinations are unbounded and not balanced: no counters to grow.
    return this.originalDst ? NO_ATTEMPT : this.stats.begin(endpointKey);
  }

  /** The endpoint for one request or connection, or the local error saying why there is none. */
  pick(info: PickInfo): Picked {
    const s = info.subset;
    return s === undefined ? this.picker.pick(info) : this.subsetOf(s).picker.pick(info);
  }

  /** The endpoints of a route subset (cached per selector for this endpoint set). */
  subsetEndpoints(s: EndpointSubset): readonly EndpointAddress[] {
    return this.subsetOf(s).endpoints;
  }

  private subsetOf(s: EndpointSubset): SubsetState {
    const m = (this.subsets ??= new Map());
    let st = m.get(s.key);
    if (st === undefined) {
      const endpoints = this.endpoints.filter((e) => inSubset(e, s));
      st = { subset: s, endpoints, picker: this.subsetPicker(s, endpoints) };
      m.set(s.key, st);
    }
    return st;
  }

  private subsetPicker(s: EndpointSubset, endpoints: readonly EndpointAddress[]): Picker {
    if (endpoints.length > 0) return buildPicker(this.policy, endpoints, this.healthView, this);
    // Envoy's subset load balancer with fallback NO_FALLBACK: nothing to send to.
    const none: Picked = { code: 'no_healthy_upstream', detail: `cluster "${this.name}" has no endpoint in subset ${s.key}` };
    return { pick: () => none };
  }

  /**
   * The circuit-breaker limit one more request would break, if any:
   * `maxRequests` in flight to the cluster, and on HTTP/1.1 upstreams (one
   * connection per request in flight) `maxConnections`.
   */
  overflow(upstreamH2: boolean): OverflowLimit | undefined {
    const active = this.stats.activeTotal;
    if (active >= this.limits.maxRequests) return 'max_requests';
    if (!upstreamH2 && active >= this.limits.maxConnections) return 'max_connections';
    if (this.pendingTotal >= this.limits.maxPendingRequests) return 'max_pending_requests';
    return undefined;
  }

  /**
   * Takes a slot for one more retry or hedged attempt, or names the limit
   * that refuses it: the route's retry budget when it has one, otherwise
   * `circuitBreakers.maxRetries`. A slot taken is given back by `releaseRetry`.
   */
  acquireRetry(budget: RetryBudgetPlan | undefined): RetryLimit | undefined {
    if (this.activeRetries >= retryAllowance(this.stats.activeTotal, budget, this.limits.maxRetries)) {
      return budget === undefined ? 'max_retries' : 'retry_budget';
    }
    this.activeRetries++;
    return undefined;
  }

  releaseRetry(): void {
    this.activeRetries--;
  }

  /**
   * Which circuit breakers are at their limit now (Envoy's `*_open` gauges),
   * read at scrape time: max_connections on clusters that may speak
   * HTTP/1.1 upstream (each request in flight holds a connection).
   */
  openBreakers(): Record<'max_requests' | 'max_pending_requests' | 'max_retries' | 'max_connections', boolean> {
    const active = this.stats.activeTotal;
    const l = this.limits;
    return {
      max_requests: active >= l.maxRequests,
      max_pending_requests: this.pendingTotal >= l.maxPendingRequests,
      max_retries: this.activeRetries >= l.maxRetries,
      max_connections: this.protocol !== 'h2' && active >= l.maxConnections,
    };
  }

  /** Whether requests that arrived over `downstream` go upstream as HTTP/2. */
  usesH2(downstreamIsH2: boolean): boolean {
    return this.protocol === 'h2' || (this.protocol === 'downstream' && downstreamIsH2);
  }
}

const NO_KEYS: ReadonlySet<string> = new Set();

interface SubsetState {
  readonly subset: EndpointSubset;
  readonly endpoints: readonly EndpointAddress[];
  picker: Picker;
}

/** EDS and the discovered types take their endpoints from the ClusterLoadAssignment of their name. */
export function takesLoadAssignment(t: Cluster_DiscoveryType): boolean {
  return t === Cluster_DiscoveryType.EDS || t >= Cluster_DiscoveryType.DNS;
}
const NO_ATTEMPT: Attempt = { end: () => undefined };

/** The balancing settings of a cluster (defaults where `c` is silent or absent). */
export function defaultLbSettings(deps: PolicyDeps, c?: Cluster): LbSettings {
  return {
    clock: deps.clock ?? systemClock(),
    random: deps.random ?? systemRandom(),
    healthyPanicThreshold: c?.healthyPanicThreshold ?? DEFAULT_HEALTHY_PANIC_THRESHOLD,
    hashBalanceFactor: c?.hashBalanceFactor ?? 0,
    minimumRingSize: Number(c?.ringHash?.minimumRingSize ?? 0n) || DEFAULT_MIN_RING_SIZE,
    maximumRingSize: Number(c?.ringHash?.maximumRingSize ?? 0n) || MAX_RING_SIZE,
    locality: localitySettings(deps, c),
  };
}

/** Priorities and zone-aware routing: `zoneAwareRouting`, `overprovisioningFactor`, the sidecar's locality. */
function localitySettings(deps: PolicyDeps, c: Cluster | undefined): LocalityLbSettings {
  const z = c?.zoneAwareRouting;
  let callers: Map<string, number> | undefined;
  let callersInPanic = false;
  if (z?.localCluster) {
    // The callers: the local cluster's endpoints (discovery's health only: nobody health-checks the callers).
    callers = new Map();
    const eps = deps.endpointsOf?.(z.localCluster) ?? [];
    let healthy = 0;
    for (const e of eps) {
      if (e.healthStatus === Endpoint_HealthStatus.UNHEALTHY || e.healthStatus === Endpoint_HealthStatus.DRAINING) continue;
      healthy++;
      const k = localityOf(e).key;
      callers.set(k, (callers.get(k) ?? 0) + 1);
    }
    const threshold = c?.healthyPanicThreshold ?? DEFAULT_HEALTHY_PANIC_THRESHOLD;
    callersInPanic = eps.length > 0 && (100 * healthy) / eps.length < threshold;
  }
  return {
    own: deps.locality,
    zoneAware: z?.enabled ?? true,
    minClusterSize: z?.minClusterSize ?? DEFAULT_MIN_CLUSTER_SIZE,
    callers,
    callersInPanic,
    overprovisioningFactor: c?.overprovisioningFactor || DEFAULT_OVERPROVISIONING_FACTOR,
  };
}

function localityOf(e: Endpoint): LocalityName {
  const l = e.locality;
  return localityName(l?.region ?? '', l?.zone ?? '', l?.subZone ?? '');
}

function discoveredHealth(source: readonly Endpoint[]): HealthView {
  const view = new Map<string, EndpointHealth>();
  for (const e of source) {
    const h: EndpointHealth | undefined =
      e.healthStatus === Endpoint_HealthStatus.UNHEALTHY
        ? 'unhealthy'
        : e.healthStatus === Endpoint_HealthStatus.DRAINING
          ? 'draining'
          : e.healthStatus === Endpoint_HealthStatus.DEGRADED
            ? 'degraded'
            : undefined;
    if (h !== undefined) view.set(endpointKey(e.address?.host ?? '', e.address?.port ?? 0), h);
  }
  return view;
}

function limitsOf(c: Cluster): CircuitBreakerLimits {
  const b = c.circuitBreakers;
  const d = DEFAULT_CIRCUIT_BREAKERS;
  if (!b) return d;
  return {
    maxConnections: b.maxConnections ?? d.maxConnections,
    maxPendingRequests: b.maxPendingRequests ?? d.maxPendingRequests,
    maxRequests: b.maxRequests ?? d.maxRequests,
    maxRetries: b.maxRetries ?? d.maxRetries,
  };
}

function toAddress(e: Endpoint): EndpointAddress {
  const host = e.address?.host ?? '';
  const port = e.address?.port ?? 0;
  return {
    host,
    port,
    weight: e.weight || 1,
    key: endpointKey(host, port),
    ...(e.priority > 0 ? { priority: e.priority } : {}),
    ...(e.locality ? { locality: localityOf(e) } : {}),
    ...(Object.keys(e.metadata).length > 0 ? { labels: e.metadata } : {}),
  };
}

function protocolOf(p: Cluster_UpstreamProtocol): UpstreamProtocol {
  switch (p) {
    case Cluster_UpstreamProtocol.HTTP1:
      return 'h1';
    case Cluster_UpstreamProtocol.HTTP2:
      return 'h2';
    default:
      return 'downstream';
  }
}

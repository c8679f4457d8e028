import { hashDraw } from '../../../core/hash.js';
import { localityName, type LocalityName } from '../../../core/locality.js';
import type { EndpointAddress } from '../endpoint.js';
import { choosePriority, priorityLoad, type LevelCounts, type PriorityLoad } from './priority-load.js';
import {
  DEFAULT_MIN_CLUSTER_SIZE,
  DEFAULT_OVERPROVISIONING_FACTOR,
  emptyPicker,
  type HealthView,
  type LbPolicy,
  type LocalityLbSettings,
  type PickInfo,
  type Picked,
  type Picker,
  type PickerCluster,
} from './picker.js';
import { chooseLocality, zoneRouting, type ZoneRouting } from './zone-aware.js';

const DEFAULTS: LocalityLbSettings = {
  own: undefined,
  zoneAware: true,
  minClusterSize: DEFAULT_MIN_CLUSTER_SIZE,
  callers: undefined,
  callersInPanic: false,
  overprovisioningFactor: DEFAULT_OVERPROVISIONING_FACTOR,
};

/** Endpoints that carry no locality form one locality of their own (Envoy: the empty Locality). */
const NO_LOCALITY = localityName('', '', '');

/**
 * The picker of a cluster: its policy's picker over the endpoint set, or —
 * when the endpoints have priorities, some are degraded, or zone-aware
 * routing applies — a layered picker that first chooses the subset as Envoy
 * does (priority level by priority load, then healthy / degraded / all in
 * panic, then for priority 0 the locality) and then lets a picker of the
 * cluster's policy, built over that subset, choose within it. The common
 * case (one priority, no degraded endpoint, no zone routing) costs nothing.
 */
export function buildPicker(policy: LbPolicy, endpoints: readonly EndpointAddress[], health: HealthView | undefined, cluster: PickerCluster): Picker {
  const loc = cluster.lb.locality ?? DEFAULTS;
  if (!needsLayers(endpoints, health, loc)) return policy.build(endpoints, health, cluster);
  return new LayeredPicker(policy, endpoints, health, cluster, loc);
}

function needsLayers(endpoints: readonly EndpointAddress[], health: HealthView | undefined, loc: LocalityLbSettings): boolean {
  let first: string | undefined;
  let localities = 0;
  for (const e of endpoints) {
    if ((e.priority ?? 0) > 0) return true;
    if (health !== undefined && health.get(e.key) === 'degraded') return true;
    const k = (e.locality ?? NO_LOCALITY).key;
    if (localities === 0) {
      first = k;
      localities = 1;
    } else if (k !== first) localities = 2;
  }
  return loc.zoneAware && loc.own !== undefined && localities > 1;
}

/** A subset's picker of the cluster's policy, built on first use (the subset itself never changes). */
class Subset {
  private built: Picker | undefined;
  constructor(
    readonly eps: readonly EndpointAddress[],
    private readonly policy: LbPolicy,
    private readonly cluster: PickerCluster,
  ) {}
  get picker(): Picker {
    return (this.built ??= this.eps.length === 0 ? emptyPicker(this.cluster) : this.policy.build(this.eps, undefined, this.cluster));
  }
}

interface Level {
  readonly all: Subset;
  readonly healthy: Subset;
  readonly degraded: Subset;
}

interface Zones {
  readonly routing: ZoneRouting;
  /** Upstream localities of priority 0, the sidecar's own first when present. */
  readonly localities: readonly LocalityName[];
  readonly healthy: readonly Subset[];
  readonly callers: readonly number[];
}

class LayeredPicker implements Picker {
  private readonly levels: Level[] = [];
  private readonly load: PriorityLoad;
  private readonly zones: Zones | undefined;
  private readonly consistent: boolean;

  constructor(
    policy: LbPolicy,
    endpoints: readonly EndpointAddress[],
    health: HealthView | undefined,
    private readonly cluster: PickerCluster,
    private readonly loc: LocalityLbSettings,
  ) {
    this.consistent = policy.consistentHash === true;
    const byLevel: { all: EndpointAddress[]; healthy: EndpointAddress[]; degraded: EndpointAddress[] }[] = [];
    for (const e of endpoints) {
      const p = e.priority ?? 0;
      while (byLevel.length <= p) byLevel.push({ all: [], healthy: [], degraded: [] });
      const h = health?.get(e.key) ?? 'healthy';
      // Draining endpoints take no new requests, not even in panic, and do not count.
      if (h === 'draining') continue;
      const l = byLevel[p]!;
      l.all.push(e);
      if (h === 'healthy') l.healthy.push(e);
      else if (h === 'degraded') l.degraded.push(e);
    }
    const counts: LevelCounts[] = byLevel.map((l) => ({ total: l.all.length, healthy: l.healthy.length, degraded: l.degraded.length }));
    this.load = priorityLoad(counts, loc.overprovisioningFactor, cluster.lb.healthyPanicThreshold);
    for (const l of byLevel) {
      this.levels.push({ all: new Subset(l.all, policy, cluster), healthy: new Subset(l.healthy, policy, cluster), degraded: new Subset(l.degraded, policy, cluster) });
    }
    this.zones = loc.zoneAware && loc.own !== undefined && byLevel.length > 0 ? zonesOf(byLevel[0]!.all, byLevel[0]!.healthy, loc, loc.own, policy, cluster) : undefined;
  }

  pick(info: PickInfo): Picked {
    const hash = this.consistent ? info.hash : undefined;
    const random = this.cluster.lb.random;
    const d0 = hash === undefined ? random.next() : hashDraw(hash, 1);
    const chosen = choosePriority(this.load, Math.floor(d0 * 100));
    const p = chosen < 0 ? -1 - chosen : chosen;
    const level = this.levels[p]!;
    if (this.load.panic[p]) return level.all.picker.pick(info);
    if (chosen < 0) return level.degraded.picker.pick(info);
    const z = this.zones;
    if (p === 0 && z !== undefined && z.routing.kind !== 'none') {
      const d1 = hash === undefined ? random.next() : hashDraw(hash, 2);
      const d2 = hash === undefined ? random.next() : hashDraw(hash, 3);
      const sub = z.healthy[chooseLocality(z.routing, d1, d2)]!;
      // A locality without healthy endpoints (only reachable through rounding): the level as a whole.
      if (sub.eps.length > 0) return sub.picker.pick(info);
    }
    return level.healthy.picker.pick(info);
  }

  describe(): unknown {
    const l = this.load;
    const z = this.zones;
    return {
      overprovisioningFactor: this.loc.overprovisioningFactor,
      priorities: this.levels.map((lv, p) => ({
        priority: p,
        endpoints: lv.all.eps.length,
        healthy: lv.healthy.eps.length,
        degraded: lv.degraded.eps.length,
        health: l.health[p],
        healthyLoad: l.healthy[p],
        degradedLoad: l.degraded[p],
        panic: l.panic[p],
      })),
      zoneAware:
        z === undefined
          ? { state: 'off', reason: this.loc.own === undefined ? 'sidecar locality unknown' : 'disabled' }
          : {
              state: z.routing.kind,
              ...(z.routing.kind === 'none' ? { reason: z.routing.reason } : {}),
              ...(z.routing.kind === 'residual' ? { localPercent: z.routing.localPercent / 100 } : {}),
              localities: z.localities.map((n, i) => ({ locality: n.key, healthy: z.healthy[i]!.eps.length, callers: z.callers[i] })),
            },
    };
  }
}

/** Priority 0's localities and Envoy's zone routing decision over them. */
function zonesOf(
  all: readonly EndpointAddress[],
  healthy: readonly EndpointAddress[],
  loc: LocalityLbSettings,
  own: LocalityName,
  policy: LbPolicy,
  cluster: PickerCluster,
): Zones {
  // Upstream localities (with any endpoint), the sidecar's own first, then in order of appearance.
  const names = new Map<string, LocalityName>();
  const present = all.some((e) => (e.locality ?? NO_LOCALITY).key === own.key);
  if (present) names.set(own.key, own);
  for (const e of all) {
    const n = e.locality ?? NO_LOCALITY;
    if (!names.has(n.key)) names.set(n.key, n);
  }
  const localities = [...names.values()];
  const healthyBy = localities.map((n) => healthy.filter((e) => (e.locality ?? NO_LOCALITY).key === n.key));
  // Callers: the local cluster's endpoints, or (unset) assumed to spread like priority 0's endpoints.
  let callerMap = loc.callers;
  if (callerMap === undefined) {
    const m = new Map<string, number>();
    for (const e of all) {
      const k = (e.locality ?? NO_LOCALITY).key;
      m.set(k, (m.get(k) ?? 0) + 1);
    }
    callerMap = m;
  }
  const callers = localities.map((n) => callerMap.get(n.key) ?? 0);
  let localLocalityCount = 0;
  for (const c of callerMap.values()) if (c > 0) localLocalityCount++;
  const routing: ZoneRouting = loc.callersInPanic
    ? { kind: 'none', reason: 'local cluster in panic' }
    : zoneRouting({
        localities: localities.map((_, i) => ({ upstreamHealthy: healthyBy[i]!.length, local: callers[i]! })),
        hasLocalLocality: present,
        localLocalityCount,
        localInOwnLocality: callerMap.get(own.key) ?? 0,
        minClusterSize: loc.minClusterSize,
      });
  return { routing, localities, healthy: healthyBy.map((eps) => new Subset(eps, policy, cluster)), callers };
}

/**
 * Envoy's zone-aware routing decision for priority 0
 * (source/common/upstream/load_balancer_impl.cc: earlyExitNonLocalityRouting,
 * calculateLocalityPercentages, regenerateLocalityRoutingStructures,
 * tryChooseLocalLocalityHosts; documented in "Zone aware routing",
 * intro/arch_overview/upstream/load_balancing/zone_aware_routing). Pure and
 * in Envoy's integer arithmetic (percentages in 1/100 %, i.e. 10000 = 100 %).
 *
 * The idea: callers in locality L send requests to the upstream's L as long
 * as L's share of the healthy upstream endpoints is at least L's share of the
 * callers. When it is not, only upstream%/local% of L's requests stay local,
 * and the rest go to the other localities in proportion to their residual
 * capacity (upstream% − local% where positive), so every upstream endpoint
 * keeps roughly the same request rate.
 */

/** One upstream locality of priority 0: healthy endpoints there and callers there. */
export interface LocalityShare {
  /** Healthy upstream endpoints in this locality. */
  readonly upstreamHealthy: number;
  /** Callers (the local cluster's endpoints) in this locality. */
  readonly local: number;
}

export type ZoneRouting =
  | { readonly kind: 'none'; readonly reason: string }
  /** Every request to the caller's locality (index 0). */
  | { readonly kind: 'direct' }
  /**
   * `localPercent` (of 10000) of requests stay in index 0; the rest are spread
   * by `residual`, the cumulative spare capacity per locality index.
   */
  | { readonly kind: 'residual'; readonly localPercent: number; readonly residual: readonly number[] };

export interface ZoneInputs {
  /**
   * Upstream localities of priority 0 (with any endpoint, healthy or not),
   * the caller's own first when the upstream has endpoints there.
   */
  readonly localities: readonly LocalityShare[];
  /** Whether index 0 is the caller's locality. */
  readonly hasLocalLocality: boolean;
  /** Localities of the local cluster (the callers) with any endpoint. */
  readonly localLocalityCount: number;
  /** Callers in the caller's own locality (the local cluster's endpoints there). */
  readonly localInOwnLocality: number;
  readonly minClusterSize: number;
}

/** Envoy's regenerateLocalityRoutingStructures (with earlyExitNonLocalityRouting). */
export function zoneRouting(z: ZoneInputs): ZoneRouting {
  const locs = z.localities;
  if (locs.length < 2) return { kind: 'none', reason: 'fewer than 2 upstream localities' };
  if (z.localLocalityCount < 2) return { kind: 'none', reason: 'callers in fewer than 2 localities' };
  if (z.localInOwnLocality === 0) return { kind: 'none', reason: 'no caller in this sidecar\u2019s locality' };
  let healthy = 0;
  for (const l of locs) healthy += l.upstreamHealthy;
  if (healthy < z.minClusterSize) return { kind: 'none', reason: `fewer than minClusterSize (${z.minClusterSize}) healthy endpoints` };

  const pct = localityPercentages(locs);
  const own = pct[0]!;
  if (z.hasLocalLocality && own.upstream > 0 && own.upstream >= own.local) return { kind: 'direct' };
  const localPercent = z.hasLocalLocality && own.local > 0 ? Math.floor((own.upstream * 10000) / own.local) : 0;
  const residual: number[] = [];
  let acc = 0;
  pct.forEach((p, i) => {
    // The caller's own locality has given what it could already.
    if (!(i === 0 && z.hasLocalLocality) && p.upstream > p.local) acc += p.upstream - p.local;
    residual.push(acc);
  });
  return { kind: 'residual', localPercent, residual };
}

/** Shares of callers and of healthy upstream endpoints per locality, in 1/100 % (Envoy's calculateLocalityPercentages). */
export function localityPercentages(locs: readonly LocalityShare[]): { local: number; upstream: number }[] {
  let totalLocal = 0;
  let totalUpstream = 0;
  for (const l of locs) {
    totalLocal += l.local;
    totalUpstream += l.upstreamHealthy;
  }
  return locs.map((l) => ({
    local: totalLocal > 0 ? Math.floor((10000 * l.local) / totalLocal) : 0,
    upstream: totalUpstream > 0 ? Math.floor((10000 * l.upstreamHealthy) / totalUpstream) : 0,
  }));
}

/**
 * Envoy's tryChooseLocalLocalityHosts: the locality index of one request.
 * `draw1` and `draw2` are independent draws in [0, 1).
 */
export function chooseLocality(r: ZoneRouting, draw1: number, draw2: number): number {
  if (r.kind !== 'residual') return 0;
  if (Math.floor(draw1 * 10000) < r.localPercent) return 0;
  const res = r.residual;
  const total = res[res.length - 1]!;
  // Rounding can leave no spare capacity anywhere: any locality then.
  if (total === 0) return Math.floor(draw2 * res.length);
  const threshold = Math.floor(draw2 * total);
  let i = 0;
  while (threshold >= res[i]!) i++;
  return i;
}

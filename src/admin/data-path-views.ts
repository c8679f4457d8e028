import type { ListenerManager } from '../proxy/listener/listener-manager.js';
import type { ProxyContext } from '../proxy/context.js';

/*
 * The admin views of one data path (the only one, or one worker's: a
 * `--concurrency` worker answers the primary with these, which merges them;
 * sidecar/workers/merge.ts).
 */

/** `/routes`: every route config's compiled table. */
export function describeRoutes(listeners: ListenerManager): unknown {
  const st = listeners.current();
  const out: Record<string, unknown> = {};
  for (const [name, t] of st?.routeTables ?? []) out[name] = t.describe();
  return { version: st?.version, routeConfigs: out };
}

/** `/listeners`: each listener's bound address. */
export function describeListeners(listeners: ListenerManager): unknown {
  const out: Record<string, unknown> = {};
  for (const [name, a] of listeners.addresses()) out[name] = a;
  return { version: listeners.current()?.version, listeners: out };
}

/**
 * `/clusters` of one data path: each cluster's policy, limits and routing,
 * and per endpoint its health, load and connection state.
 */
export function describeClusters(listeners: ListenerManager, proxy: ProxyContext): unknown {
  const st = listeners.current();
  const out: Record<string, unknown> = {};
  for (const [name, c] of st?.clusters ?? []) {
    const outlier = listeners.outliers.get(name);
    const now = proxy.clock.monotonicMs();
    out[name] = {
      protocol: c.protocol,
      connectTimeoutMs: c.connectTimeoutMs,
      lbPolicy: c.policyName,
      activeRequests: c.stats.activeTotal,
      circuitBreakers: c.limits,
      // Retries and hedges in flight, attempts waiting for a connection, and the limits reached now (docs/resilience.md).
      pendingRequests: c.pendingTotal,
      activeRetries: c.activeRetries,
      openCircuitBreakers: Object.entries(c.openBreakers()).filter(([, open]) => open).map(([limit]) => limit),
      // Priority loads and the zone-aware routing decision, when the cluster has priorities, degraded
      // endpoints or zone routing; null: one plain picker over the endpoints.
      localityRouting: c.describeRouting() ?? null,
      // ORIGINAL_DST: no endpoints; the destinations with pooled upstream connections (shared by all such clusters).
      ...(c.originalDst ? { type: 'original_dst', useHostHeader: c.useHostHeader, destinations: proxy.originalDst.destinations() } : {}),
      endpoints: c.endpoints.map((e) => {
        const h2 = proxy.h2.describe(e.key);
        const h1 = proxy.h1.describe(e.key);
        const s = c.stats.get(e.key);
        return {
          address: e.key,
          weight: e.weight,
          // Locality-aware routing (docs/resilience.md#locality-and-priority): where it runs, its failover level.
          locality: e.locality ? { region: e.locality.region, zone: e.locality.zone, subZone: e.locality.subZone } : null,
          priority: e.priority ?? 0,
          // Upstream resilience (docs/resilience.md): health, load and what outlier detection saw.
          health: c.healthLabelOf(e.key),
          activeRequests: s?.active ?? 0,
          totalRequests: s?.total ?? 0,
          successRate: s && s.total > 0 ? (s.total - s.failures) / s.total : null,
          ewmaLatencyMs: s?.sampled ? Math.round(s.estimate(now) * 1000) / 1000 : null,
          ejections: outlier?.ejectionsOf(e.key) ?? 0,
          // An endpoint with no connection yet is "idle"; a failed connect shows as "failed".
          state: h2?.state ?? (h1 ? 'ready' : 'idle'),
          ...(h2?.lastError ? { lastError: h2.lastError } : {}),
          ...(h1 ? { h1: h1 } : {}),
        };
      }),
    };
  }
  return { version: st?.version, clusters: out };
}

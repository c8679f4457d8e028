import type { JsonObject, ResourceDocument } from '../config/snapshot.js';

/** Label on every generated resource (value: its generator, e.g. "kubernetes"), so it reads as generated wherever shown. */
export const GENERATED_LABEL = 'outrigger.io/generated';

/** Discovery's health verdict on one endpoint (Endpoint.healthStatus). */
export type DiscoveredHealth = 'HEALTHY' | 'UNHEALTHY' | 'DRAINING';

/** One endpoint as a provider found it: everything a ClusterLoadAssignment carries, nothing else. */
export interface DiscoveredEndpoint {
  /** IP literal (or a host name a STATIC source gave). */
  readonly address: string;
  readonly port: number;
  /** Relative weight, at least 1. */
  readonly weight: number;
  readonly locality?: { readonly region?: string; readonly zone?: string; readonly subZone?: string };
  readonly healthStatus: DiscoveredHealth;
  /** Labels: pod labels, Consul tags and meta, announced labels. */
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * The full endpoint set of one watched service at one moment. Providers emit
 * whole sets, never deltas: a consumer replaces what it had. `version` grows
 * by one with every set emitted for the same watch.
 */
export interface EndpointSet {
  /** What was watched, e.g. "dns:api.example.com:443", "kubernetes:shop/cart:http". */
  readonly source: string;
  readonly version: number;
  readonly endpoints: readonly DiscoveredEndpoint[];
  /** Wall-clock ms of the source change this set reflects (push latency starts here). */
  readonly changedAtMs: number;
}

/**
 * Orders and de-duplicates endpoints and bumps the version only when the set
 * really changed, so a provider that re-reads an unchanged source (a DNS
 * refresh, a Consul index that moved for another service) emits nothing.
 */
export class EndpointSetTracker {
  private version = 0;
  private lastKey: string | undefined;
  private last: EndpointSet | undefined;

  constructor(
    readonly source: string,
    private readonly emit: (set: EndpointSet) => void,
    private readonly nowMs: () => number,
  ) {}

  /** Offers the source's current endpoints; emits a new version when they differ from the last set. */
  offer(endpoints: readonly DiscoveredEndpoint[]): boolean {
    const byKey = new Map<string, DiscoveredEndpoint>();
    for (const e of endpoints) {
      const k = endpointId(e);
      const prev = byKey.get(k);
      // The same address twice (two records, two slices): the healthier report wins.
      if (!prev || rank(e.healthStatus) < rank(prev.healthStatus)) byKey.set(k, e);
    }
    const sorted = [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
    const key = JSON.stringify(sorted.map(canonical));
    if (key === this.lastKey) return false;
    this.lastKey = key;
    this.last = { source: this.source, version: ++this.version, endpoints: sorted, changedAtMs: this.nowMs() };
    this.emit(this.last);
    return true;
  }

  current(): EndpointSet | undefined {
    return this.last;
  }
}

const rank = (h: DiscoveredHealth): number => (h === 'HEALTHY' ? 0 : h === 'DRAINING' ? 1 : 2);

export function endpointId(e: { address: string; port: number }): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

function canonical(e: DiscoveredEndpoint): unknown[] {
  const meta = Object.keys(e.metadata).sort().map((k) => [k, e.metadata[k]]);
  return [e.address, e.port, e.weight, e.healthStatus, e.locality?.region ?? '', e.locality?.zone ?? '', e.locality?.subZone ?? '', meta];
}

/**
 * The ClusterLoadAssignment document of an endpoint set: the one format every
 * consumer reads (pickers, health, /config_dump, the control plane's EDS).
 */
export function toLoadAssignment(
  name: string,
  set: EndpointSet | undefined,
  labels?: Readonly<Record<string, string>>,
): ResourceDocument {
  const endpoints = (set?.endpoints ?? []).map((e) => {
    const ep: JsonObject = { address: { host: e.address, port: e.port } };
    if (e.weight !== 1) ep.weight = e.weight;
    if (e.locality && (e.locality.region || e.locality.zone || e.locality.subZone)) {
      const l: JsonObject = {};
      if (e.locality.region) l.region = e.locality.region;
      if (e.locality.zone) l.zone = e.locality.zone;
      if (e.locality.subZone) l.subZone = e.locality.subZone;
      ep.locality = l;
    }
    ep.healthStatus = `HEALTH_STATUS_${e.healthStatus}`;
    if (Object.keys(e.metadata).length > 0) ep.metadata = { ...e.metadata };
    if (set) ep.source = set.source;
    return ep;
  });
  return {
    apiVersion: 'outrigger.io/v1',
    kind: 'ClusterLoadAssignment',
    metadata: labels ? { name, labels } : { name },
    spec: { endpoints },
  };
}

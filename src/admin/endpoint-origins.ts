import type { ConfigSnapshot } from '../config/snapshot.js';
import type { Endpoint } from '../gen/outrigger/config/v1/cluster_pb.js';
import { endpointKey } from '../proxy/upstream/endpoint.js';

/** Where an endpoint came from and the labels discovery found on it (/clusters). */
export interface EndpointOrigin {
  /** e.g. "kubernetes:shop/cart:8080", "consul:cart", "dns:api.example.com:443", "nats:cart", "static", "eds". */
  readonly source: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * Each endpoint's origin for one cluster, by endpoint key, read from the
 * config it was built from: the cluster's ClusterLoadAssignment when it has
 * one (discovery fills `source`; an operator's assignment shows as "eds"),
 * else its static endpoints ("static").
 */
export function endpointOrigins(snap: ConfigSnapshot | undefined, cluster: string): Map<string, EndpointOrigin> {
  const out = new Map<string, EndpointOrigin>();
  if (!snap) return out;
  const cla = snap.loadAssignments.get(cluster);
  const list: readonly Endpoint[] = cla?.endpoints ?? snap.clusters.get(cluster)?.endpoints ?? [];
  const fallback = cla ? 'eds' : 'static';
  for (const e of list) out.set(endpointKey(e.address?.host ?? '', e.address?.port ?? 0), { source: e.source || fallback, metadata: e.metadata });
  return out;
}

export type ClustersView = { version?: string; clusters: Record<string, Record<string, unknown> & { endpoints?: Record<string, unknown>[] }> };

/**
 * The text form of /clusters (`?format=text`), Envoy's layout: one line per
 * fact, `cluster::field::value` for the cluster and
 * `cluster::address::field::value` for each endpoint; objects as k=v lists.
 */
export function clustersText(view: ClustersView): string {
  const lines: string[] = [];
  const flat = (v: unknown): string =>
    v === null || v === undefined
      ? ''
      : typeof v === 'object'
        ? Array.isArray(v)
          ? v.map(flat).join(',')
          : Object.entries(v as Record<string, unknown>)
              .filter(([, x]) => x !== undefined && x !== null)
              .map(([k, x]) => `${k}=${flat(x)}`)
              .join(',')
        : String(v);
  for (const [name, c] of Object.entries(view.clusters)) {
    for (const [k, v] of Object.entries(c)) if (k !== 'endpoints' && k !== 'destinations') lines.push(`${name}::${k}::${flat(v)}`);
    for (const e of c.endpoints ?? []) {
      const addr = String(e.address);
      for (const [k, v] of Object.entries(e)) if (k !== 'address') lines.push(`${name}::${addr}::${k}::${flat(v)}`);
    }
  }
  return lines.join('\n') + (lines.length ? '\n' : '');
}

/**
 * Adds each endpoint's `source` and `metadata` (docs/discovery.md#status) to
 * a /clusters view, from the config snapshot it was built from: the view may
 * be one data path's or the --concurrency workers' merge; the snapshot is
 * the sidecar's (the primary's) either way.
 */
export function withEndpointOrigins(view: unknown, snap: ConfigSnapshot | undefined): ClustersView {
  const v = view as ClustersView;
  for (const [name, c] of Object.entries(v.clusters)) {
    const origins = endpointOrigins(snap, name);
    c.endpoints = c.endpoints?.map((e) => {
      const o = origins.get(String(e.address));
      // After `address`, as the data path's view orders them.
      const { address, ...rest } = e;
      return { address, source: o?.source ?? 'static', metadata: o?.metadata ?? {}, ...rest };
    });
  }
  return v;
}

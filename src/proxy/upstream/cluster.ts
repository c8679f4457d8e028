import type { Cluster, ClusterLoadAssignment, Endpoint } from '../../gen/outrigger/config/v1/cluster_pb.js';
import { Cluster_DiscoveryType, Cluster_UpstreamProtocol } from '../../gen/outrigger/config/v1/cluster_pb.js';
import { durationMs } from '../../core/duration.js';
import { endpointKey, type EndpointAddress } from './endpoint.js';

export type UpstreamProtocol = 'downstream' | 'h1' | 'h2';

export const DEFAULT_CONNECT_TIMEOUT_MS = 1000;
export const DEFAULT_MAX_IDLE_CONNECTIONS = 64;
export const DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS = 60_000;

/**
 * The runtime form of a Cluster for one config version: its endpoints and a
 * round-robin picker. Built once per snapshot; the only mutable part is the
 * round-robin cursor, which is harmless to share between requests.
 */
export class ClusterRuntime {
  private cursor = 0;

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
  ) {}

  static build(c: Cluster, cla: ClusterLoadAssignment | undefined): ClusterRuntime {
    const source: readonly Endpoint[] = c.type === Cluster_DiscoveryType.EDS ? (cla?.endpoints ?? []) : c.endpoints;
    const endpoints = source.map(toAddress);
    return new ClusterRuntime(
      c.name,
      endpoints,
      protocolOf(c.protocol),
      durationMs(c.connectTimeout, DEFAULT_CONNECT_TIMEOUT_MS),
      c.maxIdleConnections || DEFAULT_MAX_IDLE_CONNECTIONS,
      durationMs(c.idleTimeout, DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS),
      c.type === Cluster_DiscoveryType.ORIGINAL_DST,
      c.originalDst?.useHostHeader ?? true,
    );
  }

  /**
   * Next endpoint in round-robin order, or undefined when the cluster is empty
   * (always for ORIGINAL_DST clusters: OriginalDestinations.pick chooses theirs).
   */
  pick(): EndpointAddress | undefined {
    const n = this.endpoints.length;
    if (n === 0) return undefined;
    const i = this.cursor;
    this.cursor = i + 1 >= n ? 0 : i + 1;
    return this.endpoints[i];
  }

  /** Whether requests that arrived over `downstream` go upstream as HTTP/2. */
  usesH2(downstreamIsH2: boolean): boolean {
    return this.protocol === 'h2' || (this.protocol === 'downstream' && downstreamIsH2);
  }
}

function toAddress(e: Endpoint): EndpointAddress {
  const host = e.address?.host ?? '';
  const port = e.address?.port ?? 0;
  return { host, port, weight: e.weight || 1, key: endpointKey(host, port) };
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

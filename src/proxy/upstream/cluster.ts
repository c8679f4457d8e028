import type { Cluster, ClusterLoadAssignment, Endpoint } from '../../gen/outrigger/config/v1/cluster_pb.js';
import { Cluster_DiscoveryType, Cluster_UpstreamProtocol } from '../../gen/outrigger/config/v1/cluster_pb.js';
import { durationMs } from '../../core/duration.js';
import { endpointKey, type EndpointAddress } from './endpoint.js';
import { policyOf, type PolicyDeps } from './lb/policies.js';
import type { HealthView, LbPolicy, PickInfo, Picked, Picker } from './lb/picker.js';
import { roundRobin } from './lb/round-robin.js';

export type UpstreamProtocol = 'downstream' | 'h1' | 'h2';

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
  ) {
    this.policy = policy;
    this.picker = policy.build(endpoints, undefined, this);
  }

  static build(c: Cluster, cla: ClusterLoadAssignment | undefined, deps: PolicyDeps = {}): ClusterRuntime {
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
      policyOf(c, deps),
    );
  }

  get policyName(): string {
    return this.policy.name;
  }

  /** Rebuilds the picker for new endpoint health (health checks, outlier ejection). */
  setHealth(health: HealthView): void {
    this.picker = this.policy.build(this.endpoints, health, this);
  }

  /** The endpoint for one request or connection, or the local error saying why there is none. */
  pick(info: PickInfo): Picked {
    return this.picker.pick(info);
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

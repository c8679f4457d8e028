import type { EndpointAddress } from '../endpoint.js';
import type { PickInfo, Picked, Picker, LbPolicy, HealthView, PickerCluster } from './picker.js';

/** The cluster settings the ORIGINAL_DST choice depends on. */
export interface OriginalDstCluster extends PickerCluster {
  /** `originalDst.useHostHeader`: a request on a connection that was not redirected goes to its Host. */
  readonly useHostHeader: boolean;
  /** Pools of a destination idle this long are closed. */
  readonly idleTimeoutMs: number;
}

/** What the ORIGINAL_DST policy asks of the shared OriginalDestinations (upstream/original-dst.ts). */
export interface OriginalDestinationResolver {
  /** The destination of one request or connection of an ORIGINAL_DST cluster, or why there is none. */
  resolve(cluster: OriginalDstCluster, info: PickInfo): Picked;
}

/**
 * `DISCOVERY_TYPE_ORIGINAL_DST` clusters: no endpoint set; each connection
 * goes where it was going before iptables redirected it, and an HTTP request
 * on a connection that was not redirected to its Host (where the cluster
 * allows it). The lookups, the loop check and the per-destination pools live
 * in OriginalDestinations, shared by every config version; this picker is
 * the cluster's handle on it.
 */
export function originalDstPolicy(resolver: OriginalDestinationResolver): LbPolicy {
  return {
    name: 'original_dst',
    build(_endpoints: readonly EndpointAddress[], _health: HealthView | undefined, cluster: PickerCluster): Picker {
      const c = cluster as OriginalDstCluster;
      return { pick: (info: PickInfo) => resolver.resolve(c, info) };
    },
  };
}

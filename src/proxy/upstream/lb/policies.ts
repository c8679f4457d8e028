import { Cluster_DiscoveryType, Cluster_LbPolicy, type Cluster } from '../../../gen/outrigger/config/v1/cluster_pb.js';
import { originalDstPolicy, type OriginalDestinationResolver } from './original-dst-policy.js';
import type { LbPolicy } from './picker.js';
import { roundRobin } from './round-robin.js';

/** What policies need from outside the cluster (the composition root provides it). */
export interface PolicyDeps {
  /** ORIGINAL_DST clusters' shared destination state; without it they refuse every pick. */
  readonly originalDst?: OriginalDestinationResolver | undefined;
}

/**
 * The policy of a cluster: its `lbPolicy`, or the discovery type's own
 * (ORIGINAL_DST has no endpoint set to balance). Adding a policy is one file
 * under lb/ and one case here.
 */
export function policyOf(c: Cluster, deps: PolicyDeps): LbPolicy {
  if (c.type === Cluster_DiscoveryType.ORIGINAL_DST) {
    return originalDstPolicy(deps.originalDst ?? NO_ORIGINAL_DST);
  }
  switch (c.lbPolicy) {
    case Cluster_LbPolicy.UNSPECIFIED:
    case Cluster_LbPolicy.ROUND_ROBIN:
    default:
      return roundRobin;
  }
}

const NO_ORIGINAL_DST: OriginalDestinationResolver = {
  resolve: () => ({ code: 'no_original_destination', detail: 'no original-destination resolver in this process' }),
};

import { Cluster_DiscoveryType, Cluster_LbPolicy, type Cluster, type Endpoint } from '../../../gen/outrigger/config/v1/cluster_pb.js';
import type { LocalityName } from '../../../core/locality.js';
import { originalDstPolicy, type OriginalDestinationResolver } from './original-dst-policy.js';
import type { LbPolicy } from './picker.js';
import { leastRequest } from './least-request.js';
import { maglev } from './maglev.js';
import { peakEwma } from './peak-ewma.js';
import { randomPolicy } from './random.js';
import { ringHash } from './ring-hash.js';
import { roundRobin } from './round-robin.js';
import type { Clock } from '../../../core/clock.js';
import type { Random } from '../../../core/random.js';

/** What policies need from outside the cluster (the composition root provides it). */
export interface PolicyDeps {
  /** ORIGINAL_DST clusters' shared destination state; without it they refuse every pick. */
  readonly originalDst?: OriginalDestinationResolver | undefined;
  /** Time for latency estimates and health state; default the system clock. */
  readonly clock?: Clock | undefined;
  /** Randomness of the random-draw policies; default Math.random. */
  readonly random?: Random | undefined;
  /** This sidecar's locality (--locality): zone-aware routing keeps requests there. Undefined: unknown. */
  readonly locality?: LocalityName | undefined;
  /** The endpoints of another cluster of the same config (`zoneAwareRouting.localCluster`). */
  readonly endpointsOf?: ((cluster: string) => readonly Endpoint[] | undefined) | undefined;
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
    case Cluster_LbPolicy.LEAST_REQUEST:
      return leastRequest;
    case Cluster_LbPolicy.RANDOM:
      return randomPolicy;
    case Cluster_LbPolicy.PEAK_EWMA:
      return peakEwma;
    case Cluster_LbPolicy.RING_HASH:
      return ringHash;
    case Cluster_LbPolicy.MAGLEV:
      return maglev;
    case Cluster_LbPolicy.UNSPECIFIED:
    case Cluster_LbPolicy.ROUND_ROBIN:
    default:
      return roundRobin;
  }
}

const NO_ORIGINAL_DST: OriginalDestinationResolver = {
  resolve: () => ({ code: 'no_original_destination', detail: 'no original-destination resolver in this process' }),
};

import type { EndpointAddress } from '../endpoint.js';
import { candidatesOf, emptyPicker, type HealthView, type LbPolicy, type Picked, type Picker, type PickerCluster } from './picker.js';
import { WeightedSample } from './weighted-sample.js';

/** `LB_POLICY_RANDOM`: each request to an endpoint drawn in proportion to its weight. */
export const randomPolicy: LbPolicy = {
  name: 'random',
  build(endpoints: readonly EndpointAddress[], health: HealthView | undefined, cluster: PickerCluster): Picker {
    const eps = candidatesOf(endpoints, health, cluster.lb);
    if (eps.length === 0) return emptyPicker(cluster);
    const picks: readonly Picked[] = eps.map((ep) => ({ ep }));
    const sample = new WeightedSample(eps, cluster.lb.random);
    return { pick: () => picks[sample.next()]! };
  },
};

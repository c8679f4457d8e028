import type { EndpointAddress } from '../endpoint.js';
import { candidatesOf, emptyPicker, type HealthView, type LbPolicy, type Picked, type Picker, type PickerCluster } from './picker.js';

/**
 * `LB_POLICY_ROUND_ROBIN` (the default): endpoints in turn, in proportion to
 * their `weight`, spread out rather than in runs — nginx's smooth weighted
 * round robin: each pick adds every endpoint's weight to its running score,
 * takes the highest score and subtracts the total from it. Weights 5, 1, 1
 * give a a b a c a a, not a a a a a b c. Equal weights take the plain
 * rotation (one increment per pick).
 */
export const roundRobin: LbPolicy = {
  name: 'round_robin',
  build(endpoints: readonly EndpointAddress[], health: HealthView | undefined, cluster: PickerCluster): Picker {
    const eps = candidatesOf(endpoints, health, cluster.lb);
    if (eps.length === 0) return emptyPicker(cluster);
    const w0 = eps[0]!.weight;
    return eps.every((e) => e.weight === w0) ? new RotationPicker(eps) : new SmoothWeightedPicker(eps);
  },
};

class RotationPicker implements Picker {
  private cursor = 0;
  private readonly picks: readonly Picked[];

  constructor(eps: readonly EndpointAddress[]) {
    // One result object per endpoint, made once: a pick allocates nothing.
    this.picks = eps.map((ep) => ({ ep }));
  }

  pick(): Picked {
    const i = this.cursor;
    this.cursor = i + 1 >= this.picks.length ? 0 : i + 1;
    return this.picks[i]!;
  }
}

class SmoothWeightedPicker implements Picker {
  private readonly picks: readonly Picked[];
  private readonly weights: Float64Array;
  private readonly scores: Float64Array;
  private readonly total: number;

  constructor(eps: readonly EndpointAddress[]) {
    this.picks = eps.map((ep) => ({ ep }));
    this.weights = Float64Array.from(eps, (e) => e.weight);
    this.scores = new Float64Array(eps.length);
    this.total = this.weights.reduce((a, b) => a + b, 0);
  }

  pick(): Picked {
    const w = this.weights;
    const s = this.scores;
    let best = 0;
    for (let i = 0; i < w.length; i++) {
      s[i]! += w[i]!;
      if (s[i]! > s[best]!) best = i;
    }
    s[best]! -= this.total;
    return this.picks[best]!;
  }
}

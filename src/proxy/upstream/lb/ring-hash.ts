import type { EndpointAddress } from '../endpoint.js';
import { hash32 } from '../../../core/hash.js';
import { HashPicker, type HashLookup } from './hash-picker.js';
import { candidatesOf, emptyPicker, type HealthView, type LbPolicy, type Picker, type PickerCluster } from './picker.js';

/**
 * `LB_POLICY_RING_HASH`: a ketama-style ring. Each endpoint puts points
 * `hash("<key>_<n>")`, n = 0, 1, …, on a 32-bit ring, the same number of
 * points per unit of weight; a request goes to the first point at or after
 * its hash. Points per unit of weight are the power of two that makes the
 * ring at least `minimumRingSize` (so the ring holds between 1 and 2 times
 * that), capped by `maximumRingSize`. Unlike Envoy's exact scaling, the
 * count then stays put when an endpoint is added, so only the keys that land
 * on the new endpoint's points move (about 1/N); it halves (moving more) only
 * when the total weight crosses a power of two.
 */
export const ringHash: LbPolicy = {
  name: 'ring_hash',
  consistentHash: true,
  build(endpoints: readonly EndpointAddress[], health: HealthView | undefined, cluster: PickerCluster): Picker {
    const eps = candidatesOf(endpoints, health, cluster.lb);
    if (eps.length === 0) return emptyPicker(cluster);
    return new HashPicker(eps, buildRing(eps, cluster.lb.minimumRingSize, cluster.lb.maximumRingSize), cluster);
  },
};

/** Exported for tests. */
export function buildRing(eps: readonly EndpointAddress[], minSize: number, maxSize: number): HashLookup {
  const total = eps.reduce((a, e) => a + e.weight, 0);
  const perWeight = 2 ** Math.ceil(Math.log2(Math.max(1, minSize / total)));
  const fits = perWeight * total <= maxSize;
  // Point = hash × 2^20 + endpoint index: one numeric sort orders by hash and carries the owner.
  const points: number[] = [];
  eps.forEach((e, idx) => {
    const count = fits ? perWeight * e.weight : Math.max(1, Math.floor((e.weight * maxSize) / total));
    for (let n = 0; n < count; n++) points.push(hash32(`${e.key}_${n}`) * 1_048_576 + idx);
  });
  const sorted = Float64Array.from(points).sort();
  const hashes = new Uint32Array(sorted.length);
  const owners = new Uint32Array(sorted.length);
  sorted.forEach((p, i) => {
    hashes[i] = Math.floor(p / 1_048_576);
    owners[i] = p % 1_048_576;
  });
  return {
    size: hashes.length,
    positionOf(hash) {
      let lo = 0;
      let hi = hashes.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (hashes[mid]! < hash) lo = mid + 1;
        else hi = mid;
      }
      return lo === hashes.length ? 0 : lo;
    },
    endpointAt: (pos) => owners[pos]!,
  };
}

import type { EndpointAddress } from '../endpoint.js';
import { hash32 } from '../../../core/hash.js';
import { HashPicker, type HashLookup } from './hash-picker.js';
import { candidatesOf, emptyPicker, type HealthView, type LbPolicy, type Picker, type PickerCluster } from './picker.js';

/** Maglev's lookup table size: a prime, as the permutation needs. */
export const MAGLEV_TABLE_SIZE = 65537;

/**
 * `LB_POLICY_MAGLEV` (Google's Maglev, as in Envoy): each endpoint walks its
 * own permutation of the 65537 table slots (offset and skip from two hashes
 * of its key) and endpoints take turns claiming their next free slot, more
 * turns for more weight, until the table is full. A request takes the slot
 * of its hash modulo the table size: O(1) lookup, even spread, and little
 * movement when the endpoint set changes.
 */
export const maglev: LbPolicy = {
  name: 'maglev',
  consistentHash: true,
  build(endpoints: readonly EndpointAddress[], health: HealthView | undefined, cluster: PickerCluster): Picker {
    const eps = candidatesOf(endpoints, health, cluster.lb);
    if (eps.length === 0) return emptyPicker(cluster);
    return new HashPicker(eps, buildMaglevTable(eps, MAGLEV_TABLE_SIZE), cluster);
  },
};

/** Exported for tests. */
export function buildMaglevTable(eps: readonly EndpointAddress[], size: number): HashLookup {
  const n = eps.length;
  const offset = eps.map((e) => hash32(e.key) % size);
  const skip = eps.map((e) => (hash32(e.key, 0x9747b28c) % (size - 1)) + 1);
  const next = new Float64Array(n);
  const maxWeight = Math.max(...eps.map((e) => e.weight));
  const credit = new Float64Array(n);
  const table = new Int32Array(size).fill(-1);
  let filled = 0;
  while (filled < size) {
    for (let i = 0; i < n && filled < size; i++) {
      // The heaviest endpoint claims a slot every round, the others in proportion.
      credit[i]! += eps[i]!.weight / maxWeight;
      while (credit[i]! >= 1 && filled < size) {
        credit[i]! -= 1;
        let slot = (offset[i]! + next[i]! * skip[i]!) % size;
        while (table[slot] !== -1) {
          next[i]!++;
          slot = (offset[i]! + next[i]! * skip[i]!) % size;
        }
        table[slot] = i;
        next[i]!++;
        filled++;
      }
    }
  }
  return { size, positionOf: (hash) => hash % size, endpointAt: (pos) => table[pos]! };
}

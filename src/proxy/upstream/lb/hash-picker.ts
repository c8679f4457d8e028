import type { EndpointAddress } from '../endpoint.js';
import type { EndpointStats } from '../endpoint-stats.js';
import type { PickInfo, Picked, Picker, PickerCluster } from './picker.js';

/** A consistent-hash structure (ring or Maglev table): positions, each owned by an endpoint. */
export interface HashLookup {
  /** Number of positions. */
  readonly size: number;
  /** The position a request hash lands on. */
  positionOf(hash: number): number;
  /** The endpoint index owning a position. */
  endpointAt(pos: number): number;
}

const TWO_32 = 4294967296;

/**
 * Picks by the request's hash on a ring or table, with Google's consistent
 * hashing with bounded loads when `hashBalanceFactor` is set: an endpoint
 * takes the request only if its active requests, this one included, stay
 * within factor × its weighted share of all active requests (rounded up);
 * otherwise the walk goes on to the next endpoint on the ring / table. Such
 * an endpoint always exists (the capacities add up to at least the total),
 * so no endpoint is ever loaded past its bound by this picker.
 */
export class HashPicker implements Picker {
  private readonly picks: readonly Picked[];
  private readonly stats: readonly EndpointStats[];
  /** Each endpoint's share of the total weight, times the factor. */
  private readonly shares: Float64Array;
  private readonly factor: number;
  /** Walk marks, stamped with `walk` so they need no clearing. */
  private readonly seen: Uint32Array;
  private walk = 0;

  constructor(
    eps: readonly EndpointAddress[],
    private readonly lookup: HashLookup,
    private readonly cluster: PickerCluster,
  ) {
    this.picks = eps.map((ep) => ({ ep }));
    this.stats = eps.map((e) => cluster.stats.of(e.key));
    this.factor = cluster.lb.hashBalanceFactor / 100;
    const total = eps.reduce((a, e) => a + e.weight, 0);
    this.shares = Float64Array.from(eps, (e) => (this.factor * e.weight) / total);
    this.seen = new Uint32Array(eps.length);
  }

  pick(info: PickInfo): Picked {
    const hash = info.hash ?? Math.floor(this.cluster.lb.random.next() * TWO_32);
    const lookup = this.lookup;
    let pos = lookup.positionOf(hash);
    if (this.factor === 0) return this.picks[lookup.endpointAt(pos)]!;
    const stats = this.stats;
    let inFlight = 1;
    for (const s of stats) inFlight += s.active;
    const walk = ++this.walk;
    let distinct = 0;
    for (let step = 0; step < lookup.size && distinct < stats.length; step++) {
      const i = lookup.endpointAt(pos);
      if (this.seen[i] !== walk) {
        this.seen[i] = walk;
        distinct++;
        if (stats[i]!.active + 1 <= Math.ceil(this.shares[i]! * inFlight)) return this.picks[i]!;
      }
      pos = pos + 1 === lookup.size ? 0 : pos + 1;
    }
    // Unreachable with a factor ≥ 1 (see above); kept so a bad factor degrades to the plain hash choice.
    return this.picks[lookup.endpointAt(lookup.positionOf(hash))]!;
  }
}

import type { Random } from '../../../core/random.js';
import type { EndpointAddress } from '../endpoint.js';

/**
 * Draws endpoint indices in proportion to their weights: one random number
 * and a binary search over cumulative weights; equal weights draw directly.
 */
export class WeightedSample {
  private readonly cumulative: Float64Array | undefined;
  private readonly total: number;

  constructor(
    eps: readonly EndpointAddress[],
    private readonly random: Random,
  ) {
    const w0 = eps[0]?.weight ?? 1;
    if (eps.every((e) => e.weight === w0)) {
      this.cumulative = undefined;
      this.total = eps.length;
      return;
    }
    const c = new Float64Array(eps.length);
    let sum = 0;
    eps.forEach((e, i) => (c[i] = sum += e.weight));
    this.cumulative = c;
    this.total = sum;
  }

  next(): number {
    const c = this.cumulative;
    if (c === undefined) return this.random.int(this.total);
    return this.search(c, this.random.next() * this.total);
  }

  /**
   * An index other than `a` (there must be two or more), drawn in proportion
   * to the weights of the others, with one random number: the draw covers
   * the total without `a`'s share and steps over it.
   */
  nextExcept(a: number): number {
    const c = this.cumulative;
    if (c === undefined) return (a + 1 + this.random.int(this.total - 1)) % this.total;
    const start = a === 0 ? 0 : c[a - 1]!;
    let x = this.random.next() * (this.total - (c[a]! - start));
    if (x >= start) x += c[a]! - start;
    return this.search(c, x);
  }

  private search(c: Float64Array, x: number): number {
    let lo = 0;
    let hi = c.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

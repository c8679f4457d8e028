import type { EndpointAddress } from '../endpoint.js';
import type { EndpointStats } from '../endpoint-stats.js';
import { candidatesOf, emptyPicker, type HealthView, type LbPolicy, type Picked, type Picker, type PickerCluster } from './picker.js';
import { WeightedSample } from './weighted-sample.js';

/** The load of one endpoint as a P2C policy sees it; lower wins. */
export type LoadOf = (stats: EndpointStats, ep: EndpointAddress, now: number) => number;

/**
 * A power-of-two-choices policy: draw two endpoints by weight, take the one
 * with the lower load (ties: the first drawn). Two random choices give
 * exponentially better balance than one, without the herd a global minimum
 * causes when every balancer sees the same "least loaded" endpoint.
 *
 * `distinct`: the two are always different endpoints (tower's p2c, which
 * Linkerd's balancer is: `sample_floyd2`), so the costliest endpoint never
 * wins; otherwise they are drawn independently (Envoy's least request), and
 * an endpoint drawn twice is taken whatever its load (1/N² of the picks).
 */
export function twoChoicesPolicy(name: string, loadOf: LoadOf, distinct = false): LbPolicy {
  return {
    name,
    build(endpoints: readonly EndpointAddress[], health: HealthView | undefined, cluster: PickerCluster): Picker {
      const eps = candidatesOf(endpoints, health, cluster.lb);
      if (eps.length === 0) return emptyPicker(cluster);
      const picks: readonly Picked[] = eps.map((ep) => ({ ep }));
      if (eps.length === 1) return { pick: () => picks[0]! };
      const stats = eps.map((e) => cluster.stats.of(e.key));
      const sample = new WeightedSample(eps, cluster.lb.random);
      const clock = cluster.lb.clock;
      return {
        pick: () => {
          const a = sample.next();
          const b = distinct ? sample.nextExcept(a) : sample.next();
          if (a === b) return picks[a]!;
          const now = clock.monotonicMs();
          return picks[loadOf(stats[b]!, eps[b]!, now) < loadOf(stats[a]!, eps[a]!, now) ? b : a]!;
        },
      };
    },
  };
}

import type { Cluster } from '../gen/outrigger/config/v1/cluster_pb.js';
import type { HashPolicy } from '../gen/outrigger/config/v1/route_pb.js';
import { checkNonNegative, type Report } from './report.js';

/** The ring-size bound (Envoy's). */
const MAX_RING_SIZE = 8_388_608n;

/** Balancing settings of a Cluster (docs/config.md, docs/resilience.md). */
export function checkClusterBalancing(c: Cluster, report: Report): void {
  if (c.hashBalanceFactor !== 0 && c.hashBalanceFactor < 100) {
    report('spec.hashBalanceFactor', `must be at least 100 (percent of the mean load), or 0 for unbounded; got ${c.hashBalanceFactor}`);
  }
  if (c.healthyPanicThreshold !== undefined && c.healthyPanicThreshold > 100) {
    report('spec.healthyPanicThreshold', `a percentage: 0..100, got ${c.healthyPanicThreshold}`);
  }
  const r = c.ringHash;
  if (r) {
    if (r.maximumRingSize > MAX_RING_SIZE) report('spec.ringHash.maximumRingSize', `at most ${MAX_RING_SIZE}, got ${r.maximumRingSize}`);
    if (r.minimumRingSize > MAX_RING_SIZE) report('spec.ringHash.minimumRingSize', `at most ${MAX_RING_SIZE}, got ${r.minimumRingSize}`);
    if (r.maximumRingSize !== 0n && r.minimumRingSize > r.maximumRingSize) {
      report('spec.ringHash.minimumRingSize', `must not exceed maximumRingSize (${r.maximumRingSize})`);
    }
  }
  checkNonNegative(c.peakEwma?.decay, 'spec.peakEwma.decay', report);
  checkNonNegative(c.peakEwma?.defaultRtt, 'spec.peakEwma.defaultRtt', report);
}

/** A route's `hashPolicy[]`; `at` is the route action's path. */
export function checkHashPolicies(list: readonly HashPolicy[], at: string, report: Report): void {
  list.forEach((p, i) => {
    const pp = `${at}.hashPolicy[${i}]`;
    const s = p.policySpecifier;
    switch (s.case) {
      case 'header':
      case 'queryParameter':
        if (s.value.name === '') report(`${pp}.${s.case}.name`, 'required');
        break;
      case 'cookie':
        if (s.value.name === '') report(`${pp}.cookie.name`, 'required');
        checkNonNegative(s.value.ttl, `${pp}.cookie.ttl`, report);
        break;
      case 'sourceIp':
        break;
      default:
        report(pp, 'set one of header, cookie, sourceIp, queryParameter');
    }
  });
}

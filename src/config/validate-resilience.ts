import { Cluster_DiscoveryType, Cluster_LbPolicy, type Cluster, type Cluster_HealthCheck, type Cluster_OutlierDetection, type Endpoint } from '../gen/outrigger/config/v1/cluster_pb.js';
import type { HashPolicy, RouteAction, RouteConfiguration } from '../gen/outrigger/config/v1/route_pb.js';
import { durationMs } from '../core/duration.js';
import {
  DEFAULT_BASE_INTERVAL_MS,
  MAX_BUFFER_LIMIT_BYTES,
  MAX_HEDGE_ATTEMPTS,
  MAX_NUM_RETRIES,
  RETRY_ON,
  parseGrpcStatus,
  parseRetryOn,
} from '../core/retry-vocabulary.js';
import { checkNonNegative, type Report } from './report.js';

/** The ring-size bound (Envoy's). */
const MAX_RING_SIZE = 8_388_608n;

/** Balancing settings of a Cluster (docs/config.md, docs/resilience.md). */
export function checkClusterBalancing(c: Cluster, report: Report): void {
  if (c.hashBalanceFactor !== 0 && c.hashBalanceFactor < 100) {
    report('spec.hashBalanceFactor', `must be at least 100 (percent of the mean load), or 0 for unbounded; got ${c.hashBalanceFactor}`);
  }
  checkPercent(c.healthyPanicThreshold, 'spec.healthyPanicThreshold', report);
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
  if (c.healthCheck) checkHealthCheck(c.healthCheck, report);
  if (c.outlierDetection) checkOutlierDetection(c.outlierDetection, report);
  const f = c.overprovisioningFactor;
  if (f !== undefined && (f === 0 || f > MAX_OVERPROVISIONING)) {
    report('spec.overprovisioningFactor', `a percentage in 1..${MAX_OVERPROVISIONING} (140 = Envoy's 1.4), got ${f}`);
  }
}

/** Bounds of the priority machinery: levels are an array indexed by priority. */
export const MAX_PRIORITY = 127;
const MAX_OVERPROVISIONING = 1000;

/** `Endpoint.priority` of a cluster's or a load assignment's endpoints. */
export function checkEndpointPriority(e: Endpoint, at: string, report: Report): void {
  if (e.priority > MAX_PRIORITY) report(`${at}.priority`, `at most ${MAX_PRIORITY}, got ${e.priority}`);
}

/** `zoneAwareRouting.localCluster` names a cluster of the same config that has endpoints. */
export function checkZoneAwareRouting(c: Cluster, clusterOf: (name: string) => Cluster | undefined, isUnresolved: (name: string) => boolean, report: Report): void {
  const local = c.zoneAwareRouting?.localCluster ?? '';
  if (local === '' || isUnresolved(local)) return;
  const lc = clusterOf(local);
  if (!lc) report('spec.zoneAwareRouting.localCluster', `unknown cluster "${local}"`);
  else if (lc.type === Cluster_DiscoveryType.ORIGINAL_DST) {
    report('spec.zoneAwareRouting.localCluster', `cluster "${local}" is DISCOVERY_TYPE_ORIGINAL_DST: it has no endpoints to say where the callers run`);
  }
}

/**
 * Warnings (the config is still accepted): a route that sends to a ring-hash
 * or Maglev cluster without a `hashPolicy` gives every request a random hash,
 * so the consistent hashing buys nothing.
 */
export function warnHashWithoutPolicy(rc: RouteConfiguration, clusterOf: (name: string) => Cluster | undefined, warn: Report): void {
  rc.virtualHosts.forEach((vh, v) =>
    vh.routes.forEach((route, r) => {
      if (route.action.case !== 'route') return;
      const a = route.action.value;
      const c = clusterOf(a.cluster);
      if (!c || a.hashPolicy.length > 0 || c.type === Cluster_DiscoveryType.ORIGINAL_DST) return;
      if (c.lbPolicy !== Cluster_LbPolicy.RING_HASH && c.lbPolicy !== Cluster_LbPolicy.MAGLEV) return;
      warn(
        `spec.virtualHosts[${v}].routes[${r}].route.hashPolicy`,
        `cluster "${a.cluster}" balances with ${c.lbPolicy === Cluster_LbPolicy.RING_HASH ? 'LB_POLICY_RING_HASH' : 'LB_POLICY_MAGLEV'} but this route has no hashPolicy: each request gets a random hash (no stickiness)`,
      );
    }),
  );
}

function checkPercent(v: number | undefined, path: string, report: Report): void {
  if (v !== undefined && v > 100) report(path, `a percentage: 0..100, got ${v}`);
}

function checkOutlierDetection(o: Cluster_OutlierDetection, report: Report): void {
  const p = 'spec.outlierDetection';
  for (const f of ['interval', 'baseEjectionTime', 'maxEjectionTime'] as const) checkNonNegative(o[f], `${p}.${f}`, report);
  checkPercent(o.maxEjectionPercent, `${p}.maxEjectionPercent`, report);
  checkPercent(o.failurePercentage?.threshold, `${p}.failurePercentage.threshold`, report);
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/;

function checkHealthCheck(hc: Cluster_HealthCheck, report: Report): void {
  const p = 'spec.healthCheck';
  for (const f of ['interval', 'timeout', 'intervalJitter', 'noTrafficInterval'] as const) checkNonNegative(hc[f], `${p}.${f}`, report);
  const c = hc.checker;
  switch (c.case) {
    case 'http':
      if (c.value.path !== '' && !c.value.path.startsWith('/')) report(`${p}.http.path`, `must start with "/", got "${c.value.path}"`);
      c.value.expectedStatuses.forEach((r, i) => {
        if (r.start < 100 || r.end > 600 || r.start >= r.end) {
          report(`${p}.http.expectedStatuses[${i}]`, `a [start, end) range within 100..600 with start < end, got [${r.start}, ${r.end})`);
        }
      });
      break;
    case 'tcp':
      if (!HEX.test(c.value.send)) report(`${p}.tcp.send`, 'hex bytes, e.g. "50494e47"');
      if (!HEX.test(c.value.expect)) report(`${p}.tcp.expect`, 'hex bytes, e.g. "504f4e47"');
      break;
    case 'grpc':
      break;
    case 'custom':
      // The module is loaded, and its config checked, when the data path applies the config (docs/plugins.md).
      if (c.value.module === '') report(`${p}.custom.module`, 'required: a path relative to the config file, or a package name');
      break;
    default:
      report(p, 'set one of http, tcp, grpc, custom');
  }
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

/** A route action's `retryPolicy`, `hedgePolicy` and `perRequestBufferLimitBytes`; `at` is the route action's path. */
export function checkRetries(a: RouteAction, at: string, report: Report): void {
  const r = a.retryPolicy;
  if (r) {
    const rp = `${at}.retryPolicy`;
    r.retryOn.forEach((entry, i) => {
      const { bits, unknown } = parseRetryOn(entry);
      for (const w of unknown) report(`${rp}.retryOn[${i}]`, `unknown retryOn condition "${w}"; known: ${Object.keys(RETRY_ON).join(', ')}`);
      if (bits === 0 && unknown.length === 0) report(`${rp}.retryOn[${i}]`, 'empty condition');
    });
    if (r.numRetries !== undefined && r.numRetries > MAX_NUM_RETRIES) report(`${rp}.numRetries`, `at most ${MAX_NUM_RETRIES}, got ${r.numRetries}`);
    checkNonNegative(r.perTryTimeout, `${rp}.perTryTimeout`, report);
    const b = r.retryBackOff;
    if (b) {
      checkNonNegative(b.baseInterval, `${rp}.retryBackOff.baseInterval`, report);
      checkNonNegative(b.maxInterval, `${rp}.retryBackOff.maxInterval`, report);
      const base = b.baseInterval ? durationMs(b.baseInterval, 0) : DEFAULT_BASE_INTERVAL_MS;
      const max = b.maxInterval ? durationMs(b.maxInterval, 0) : undefined;
      if (max !== undefined && max > 0 && max < base) report(`${rp}.retryBackOff.maxInterval`, `must not be below baseInterval (${base}ms), got ${max}ms`);
    }
    r.retriableStatusCodes.forEach((c, i) => {
      if (c < 100 || c > 599) report(`${rp}.retriableStatusCodes[${i}]`, `an HTTP status 100..599, got ${c}`);
    });
    const bud = r.retryBudget;
    if (bud) {
      const p = bud.budgetPercent;
      if (p !== undefined && !(p >= 0 && p <= 100)) report(`${rp}.retryBudget.budgetPercent`, `a percentage: 0..100, got ${p}`);
    }
  }
  const h = a.hedgePolicy;
  if (h) {
    const hp = `${at}.hedgePolicy`;
    if (h.maxAttempts < 2 || h.maxAttempts > MAX_HEDGE_ATTEMPTS) {
      report(`${hp}.maxAttempts`, `2..${MAX_HEDGE_ATTEMPTS} attempts (the first included), got ${h.maxAttempts}`);
    }
    checkNonNegative(h.hedgingDelay, `${hp}.hedgingDelay`, report);
    h.nonFatalStatusCodes.forEach((c, i) => {
      if (parseGrpcStatus(c) === undefined) report(`${hp}.nonFatalStatusCodes[${i}]`, `a gRPC status name (e.g. "UNAVAILABLE") or number 0..16, got "${c}"`);
    });
  }
  const lim = a.perRequestBufferLimitBytes;
  if (lim !== undefined && lim > MAX_BUFFER_LIMIT_BYTES) report(`${at}.perRequestBufferLimitBytes`, `at most ${MAX_BUFFER_LIMIT_BYTES}, got ${lim}`);
}

import type { RouteAction } from '../../gen/outrigger/config/v1/route_pb.js';
import { durationMs } from '../../core/duration.js';
import { compileSubset } from '../upstream/lb/subset.js';
import type { FaultPlan, MirrorPlan, WeightedSplit, WeightedTarget } from './types.js';

/** The traffic-management parts of a compiled cluster action: only the keys a route sets, so unused features cost nothing. */
export interface TrafficParts {
  subset?: NonNullable<ReturnType<typeof compileSubset>>;
  weighted?: WeightedSplit;
  mirror?: MirrorPlan;
  fault?: FaultPlan;
}

/**
 * `endpointSelector`, `weightedClusters`, `mirror` and `fault` of a route
 * (docs/routing.md). The validator (config/validate-routes.ts) reports the
 * same problems with their field paths before a snapshot gets here.
 */
export function compileTraffic(v: RouteAction, onError: (rel: string, message: string) => never): TrafficParts {
  const out: TrafficParts = {};
  const subset = compileSubset(v.endpointSelector?.matchLabels);
  if (subset !== undefined) out.subset = subset;
  if (v.weightedClusters.length > 0) {
    if (subset !== undefined) onError('endpointSelector', 'with weightedClusters, give each entry its own endpointSelector');
    const targets: WeightedTarget[] = [];
    let total = 0;
    v.weightedClusters.forEach((w, i) => {
      if (w.cluster === '') onError(`weightedClusters[${i}].cluster`, 'required');
      if (w.weight <= 0) onError(`weightedClusters[${i}].weight`, 'must be > 0');
      total += w.weight;
      targets.push(Object.freeze({ cluster: w.cluster, subset: compileSubset(w.endpointSelector?.matchLabels), weight: w.weight, upTo: total }));
    });
    out.weighted = Object.freeze({ targets: Object.freeze(targets), total });
  }
  if (v.mirror !== undefined) {
    if (v.mirror.cluster === '') onError('mirror.cluster', 'required');
    out.mirror = Object.freeze({ cluster: v.mirror.cluster, fraction: fractionOf(v.mirror.percent, 'mirror.percent', onError) });
  }
  const f = v.fault;
  if (f !== undefined && (f.delay !== undefined || f.abort !== undefined)) {
    const plan: { -readonly [K in keyof FaultPlan]: FaultPlan[K] } = {};
    if (f.delay !== undefined) {
      const ms = durationMs(f.delay.fixedDelay, 0);
      if (!(ms > 0)) onError('fault.delay.fixedDelay', 'must be > 0');
      plan.delay = Object.freeze({ ms, fraction: fractionOf(f.delay.percent, 'fault.delay.percent', onError) });
    }
    if (f.abort !== undefined) {
      const s = f.abort.status;
      if (s.case === undefined) onError('fault.abort', 'httpStatus or grpcStatus is required');
      if (s.case === 'httpStatus' && (s.value < 200 || s.value > 599)) onError('fault.abort.httpStatus', `status ${s.value} is not in 200..599`);
      if (s.case === 'grpcStatus' && (s.value < 1 || s.value > 16)) onError('fault.abort.grpcStatus', `status ${s.value} is not in 1..16`);
      plan.abort = Object.freeze({
        httpStatus: s.case === 'httpStatus' ? s.value : undefined,
        grpcStatus: s.case === 'grpcStatus' ? s.value : undefined,
        fraction: fractionOf(f.abort.percent, 'fault.abort.percent', onError),
      });
    }
    out.fault = Object.freeze(plan);
  }
  return out;
}

/** A percent field (absent: 100) as a fraction 0..1. */
function fractionOf(percent: number | undefined, at: string, onError: (rel: string, message: string) => never): number {
  if (percent === undefined) return 1;
  if (!(percent >= 0 && percent <= 100)) onError(at, `${percent} is not in 0..100`);
  return percent / 100;
}

/** The target of one request of a weighted split; `draw` in [0, 1) (the injected random). */
export function chooseWeighted(w: WeightedSplit, draw: number): WeightedTarget {
  const at = draw * w.total;
  const t = w.targets;
  for (let i = 0; i < t.length - 1; i++) if (at < t[i]!.upTo) return t[i]!;
  return t[t.length - 1]!;
}

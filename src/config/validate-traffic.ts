import type { RouteAction } from '../gen/outrigger/config/v1/route_pb.js';
import { checkNonNegative, type Report } from './report.js';

/**
 * A route's traffic management (docs/routing.md): endpoint subsets, weighted
 * splits, mirroring, fault injection. Cluster names resolve like `cluster`'s
 * (`clusterExists` counts clusters still arriving from a source as existing).
 */
export function checkTraffic(a: RouteAction, ap: string, clusterExists: (name: string) => boolean, report: Report): void {
  checkSelector(a.endpointSelector?.matchLabels, `${ap}.endpointSelector.matchLabels`, report);
  if (a.weightedClusters.length > 0) {
    if (a.cluster !== '') report(`${ap}.weightedClusters`, 'set cluster or weightedClusters, not both');
    if (a.endpointSelector !== undefined) report(`${ap}.endpointSelector`, 'with weightedClusters, give each entry its own endpointSelector');
    a.weightedClusters.forEach((w, i) => {
      const wp = `${ap}.weightedClusters[${i}]`;
      if (w.cluster === '') report(`${wp}.cluster`, 'required');
      else if (!clusterExists(w.cluster)) report(`${wp}.cluster`, `unknown cluster "${w.cluster}"`);
      if (w.weight <= 0) report(`${wp}.weight`, 'must be > 0');
      checkSelector(w.endpointSelector?.matchLabels, `${wp}.endpointSelector.matchLabels`, report);
    });
  }
  const m = a.mirror;
  if (m !== undefined) {
    if (m.cluster === '') report(`${ap}.mirror.cluster`, 'required');
    else if (!clusterExists(m.cluster)) report(`${ap}.mirror.cluster`, `unknown cluster "${m.cluster}"`);
    checkPercent(m.percent, `${ap}.mirror.percent`, report);
  }
  const f = a.fault;
  if (f !== undefined) {
    if (f.delay === undefined && f.abort === undefined) report(`${ap}.fault`, 'set delay, abort or both');
    if (f.delay !== undefined) {
      const d = f.delay.fixedDelay;
      if (d === undefined || (d.seconds === 0n && d.nanos === 0)) report(`${ap}.fault.delay.fixedDelay`, 'required (> 0)');
      else checkNonNegative(d, `${ap}.fault.delay.fixedDelay`, report);
      checkPercent(f.delay.percent, `${ap}.fault.delay.percent`, report);
    }
    if (f.abort !== undefined) {
      const s = f.abort.status;
      if (s.case === undefined) report(`${ap}.fault.abort`, 'httpStatus or grpcStatus is required');
      else if (s.case === 'httpStatus' && (s.value < 200 || s.value > 599)) report(`${ap}.fault.abort.httpStatus`, `must be 200..599, got ${s.value}`);
      else if (s.case === 'grpcStatus' && (s.value < 1 || s.value > 16)) report(`${ap}.fault.abort.grpcStatus`, `must be 1..16 (a gRPC error code), got ${s.value}`);
      checkPercent(f.abort.percent, `${ap}.fault.abort.percent`, report);
    }
  }
}

function checkPercent(p: number | undefined, at: string, report: Report): void {
  if (p !== undefined && !(p >= 0 && p <= 100)) report(at, `must be 0..100, got ${p}`);
}

function checkSelector(labels: Readonly<Record<string, string>> | undefined, at: string, report: Report): void {
  if (labels === undefined) return;
  for (const k of Object.keys(labels)) if (k === '') report(at, 'label names must not be empty');
}

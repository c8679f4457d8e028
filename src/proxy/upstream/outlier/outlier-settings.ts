import type { Cluster_OutlierDetection } from '../../../gen/outrigger/config/v1/cluster_pb.js';
import { durationMs } from '../../../core/duration.js';

/** A cluster's `outlierDetection`, resolved with Envoy's defaults. 0 disables a consecutive counter. */
export interface OutlierSettings {
  readonly consecutive5xx: number;
  readonly consecutiveGatewayFailure: number;
  readonly consecutiveLocalOriginFailure: number;
  readonly successRate: { readonly minimumHosts: number; readonly requestVolume: number; readonly stdevFactor: number } | undefined;
  readonly failurePercentage: { readonly threshold: number; readonly minimumHosts: number; readonly requestVolume: number } | undefined;
  readonly intervalMs: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectionPercent: number;
}

export function outlierSettingsOf(o: Cluster_OutlierDetection): OutlierSettings {
  const base = durationMs(o.baseEjectionTime, 30_000) || 30_000;
  return {
    consecutive5xx: o.consecutive5xx ?? 5,
    consecutiveGatewayFailure: o.consecutiveGatewayFailure,
    consecutiveLocalOriginFailure: o.consecutiveLocalOriginFailure,
    successRate: o.successRate && {
      minimumHosts: o.successRate.minimumHosts ?? 5,
      requestVolume: o.successRate.requestVolume ?? 100,
      stdevFactor: o.successRate.stdevFactor ?? 1900,
    },
    failurePercentage: o.failurePercentage && {
      threshold: o.failurePercentage.threshold ?? 85,
      minimumHosts: o.failurePercentage.minimumHosts ?? 5,
      requestVolume: o.failurePercentage.requestVolume ?? 50,
    },
    intervalMs: durationMs(o.interval, 10_000) || 10_000,
    baseEjectionMs: base,
    maxEjectionMs: Math.max(base, durationMs(o.maxEjectionTime, 300_000) || 300_000),
    maxEjectionPercent: o.maxEjectionPercent ?? 10,
  };
}

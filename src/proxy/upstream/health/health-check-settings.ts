import type { Cluster_HealthCheck } from '../../../gen/outrigger/config/v1/cluster_pb.js';
import { durationMs } from '../../../core/duration.js';
import type { ModuleLoader } from '../../../core/module-loader.js';
import { grpcProbe, httpProbe, tcpProbe, type Probe } from './probes.js';
import { customProbe } from './custom-probe.js';

export const DEFAULT_HC_INTERVAL_MS = 5000;
export const DEFAULT_HC_TIMEOUT_MS = 1000;
export const DEFAULT_UNHEALTHY_THRESHOLD = 3;
export const DEFAULT_HEALTHY_THRESHOLD = 2;
export const DEFAULT_NO_TRAFFIC_INTERVAL_MS = 60_000;

/** A cluster's `healthCheck`, resolved with defaults. */
export interface HealthCheckSettings {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
  readonly jitterMs: number;
  readonly noTrafficIntervalMs: number;
  readonly kind: 'http' | 'tcp' | 'grpc' | 'custom';
  readonly probe: Probe;
}

/** Undefined when the config names no checker (validation reports that). `modules`: where custom checks' modules were imported. */
export function healthCheckSettingsOf(hc: Cluster_HealthCheck, modules?: ModuleLoader): HealthCheckSettings | undefined {
  const base = {
    intervalMs: durationMs(hc.interval, DEFAULT_HC_INTERVAL_MS) || DEFAULT_HC_INTERVAL_MS,
    timeoutMs: durationMs(hc.timeout, DEFAULT_HC_TIMEOUT_MS) || DEFAULT_HC_TIMEOUT_MS,
    unhealthyThreshold: hc.unhealthyThreshold || DEFAULT_UNHEALTHY_THRESHOLD,
    healthyThreshold: hc.healthyThreshold || DEFAULT_HEALTHY_THRESHOLD,
    jitterMs: durationMs(hc.intervalJitter, 0),
    noTrafficIntervalMs: durationMs(hc.noTrafficInterval, DEFAULT_NO_TRAFFIC_INTERVAL_MS) || DEFAULT_NO_TRAFFIC_INTERVAL_MS,
  };
  const c = hc.checker;
  switch (c.case) {
    case 'http': {
      const ranges = c.value.expectedStatuses.map((r) => [r.start, r.end] as const);
      return {
        ...base,
        kind: 'http',
        probe: httpProbe({
          path: c.value.path || '/',
          host: c.value.host,
          method: c.value.method || 'GET',
          expected: ranges.length > 0 ? ranges : [[200, 400]],
        }),
      };
    }
    case 'tcp':
      return { ...base, kind: 'tcp', probe: tcpProbe(Buffer.from(c.value.send, 'hex'), Buffer.from(c.value.expect, 'hex')) };
    case 'grpc':
      return { ...base, kind: 'grpc', probe: grpcProbe(c.value.service, c.value.authority) };
    case 'custom':
      return { ...base, kind: 'custom', probe: customProbe(c.value.module, c.value.config ?? {}, modules) };
    default:
      return undefined;
  }
}

import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { durationMs } from '../../../core/duration.js';
import { GrpcStatus } from '../../../core/errors.js';
import { RateLimitDescriptorSchema } from '../../../gen/envoy/extensions/common/ratelimit/v3/ratelimit_pb.js';
import {
  RateLimitRequestSchema,
  RateLimitResponse_Code,
  RateLimitResponse_RateLimit_Unit as Unit,
  RateLimitResponseSchema,
  type RateLimitResponse_DescriptorStatus,
} from '../../../gen/envoy/service/ratelimit/v3/rls_pb.js';
import type { HeaderValue } from '../../../gen/envoy/config/core/v3/base_pb.js';
import type { RateLimitServiceBackend } from '../../../gen/outrigger/filters/global_rate_limit/v1/global_rate_limit_pb.js';
import type { FilterClusterCalls } from '../filter.js';
import { rateLimited } from '../rate-limit/rate-limited.js';
import { BackendUnavailable, type BackendAnswer, type CompiledLimit, type LimitBackend } from './limit-backend.js';

const SHOULD_RATE_LIMIT = '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit';

/** A unit's length, for a status that names its limit but not the time until reset. */
const UNIT_MS: Partial<Record<Unit, number>> = {
  [Unit.SECOND]: 1000,
  [Unit.MINUTE]: 60_000,
  [Unit.HOUR]: 3_600_000,
  [Unit.DAY]: 86_400_000,
  [Unit.MONTH]: 30 * 86_400_000,
  [Unit.YEAR]: 365 * 86_400_000,
};

/**
 * The descriptor entry key of a limit, as Envoy's rate_limits actions name
 * them (docs/filters.md#the-rate-limit-service): the limit's `name` when it
 * has one (Envoy's descriptor_key), else the action's default key.
 */
export function descriptorKey(l: CompiledLimit): string {
  if (l.configuredName !== '') return l.configuredName;
  if (l.kind.startsWith('header:')) return l.kind.slice('header:'.length);
  switch (l.kind) {
    case 'remoteAddress':
      return 'remote_address';
    case 'constant':
      return 'generic_key';
    default:
      return l.kind; // principal, route
  }
}

/**
 * The `service` backend: one ShouldRateLimit call per request with one
 * descriptor per applied limit, to the cluster through the sidecar's own
 * upstream pools (FilterCompileContext.clusters.grpcUnary, state/filter-env.ts → GrpcCall), so the service's
 * cluster gets endpoint picks, health checks, mesh TLS and pooled HTTP/2
 * connections like any upstream, and no second gRPC stack runs in the sidecar.
 */
export function compileServiceBackend(s: RateLimitServiceBackend, domain: string, timeoutMs: number, env: FilterClusterCalls | undefined): LimitBackend {
  if (s.cluster === '') throw new Error('service.cluster: required');
  if (!env) throw new Error('service: this sidecar cannot call clusters from filters');
  if (!env.hasCluster(s.cluster)) throw new Error(`service.cluster: no cluster "${s.cluster}"`);
  const cluster = s.cluster;
  const dom = s.domain || domain;
  const callMs = durationMs(s.timeout, timeoutMs);
  return {
    kind: 'service',
    async decide(_ds, applied, values): Promise<BackendAnswer> {
      const req = create(RateLimitRequestSchema, {
        domain: dom,
        descriptors: applied.map((l, i) => create(RateLimitDescriptorSchema, { entries: [{ key: descriptorKey(l), value: values[i]! }] })),
      });
      const a = await env.grpcUnary(cluster, SHOULD_RATE_LIMIT, toBinary(RateLimitRequestSchema, req), callMs);
      if (a.code !== GrpcStatus.OK) {
        const reason = a.code === GrpcStatus.DEADLINE_EXCEEDED ? 'timeout' : /no endpoint|no cluster/.test(a.message) ? 'no_endpoint' : 'unavailable';
        throw new BackendUnavailable(reason, `ShouldRateLimit: status ${a.code} ${a.message}`);
      }
      const r = fromBinary(RateLimitResponseSchema, a.response!);
      const responseHeaders = headerPairs(r.responseHeadersToAdd);
      // As Envoy: only OVER_LIMIT refuses; OK and UNKNOWN let the request through.
      if (r.overallCode !== RateLimitResponse_Code.OVER_LIMIT) return { allowed: true, requestHeaders: headerPairs(r.requestHeadersToAdd), responseHeaders };
      let i = r.statuses.findIndex((st) => st.code === RateLimitResponse_Code.OVER_LIMIT);
      if (i < 0 || i >= applied.length) i = 0;
      const st = r.statuses[i];
      return { allowed: false, limit: applied[i]!, verdict: verdictOf(st), responseHeaders };
    },
  };
}

function verdictOf(st: RateLimitResponse_DescriptorStatus | undefined): ReturnType<typeof rateLimited> {
  const lim = st?.currentLimit;
  const resetMs = st?.durationUntilReset ? durationMs(st.durationUntilReset, 0) : lim ? (UNIT_MS[lim.unit] ?? 1000) : 1000;
  return rateLimited(lim ? lim.requestsPerUnit : undefined, st?.limitRemaining ?? 0, resetMs);
}

function headerPairs(hs: readonly HeaderValue[]): (readonly [string, string])[] | undefined {
  if (hs.length === 0) return undefined;
  return hs.map((h) => [h.key.toLowerCase(), h.value !== '' ? h.value : Buffer.from(h.rawValue).toString('latin1')] as const);
}

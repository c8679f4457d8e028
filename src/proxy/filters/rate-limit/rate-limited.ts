import { create } from '@bufbuild/protobuf';
import { anyPack, DurationSchema } from '@bufbuild/protobuf/wkt';
import { RetryInfoSchema } from '../../../gen/google/rpc/error_details_pb.js';
import type { FilterVerdict } from '../filter.js';

/**
 * The 429 / RESOURCE_EXHAUSTED answer of both rate-limit filters: the
 * RateLimit-* fields of draft-ietf-httpapi-ratelimit-headers and Retry-After
 * in every dialect, and a google.rpc.RetryInfo detail for gRPC callers (and
 * in the JSON error of REST and Connect).
 */
export function rateLimited(limit: number | undefined, remaining: number, resetMs: number): NonNullable<FilterVerdict> {
  const resetS = Math.max(1, Math.ceil(resetMs / 1000));
  const delay = create(DurationSchema, { seconds: BigInt(Math.floor(resetMs / 1000)), nanos: Math.round(resetMs % 1000) * 1e6 });
  return {
    code: 'rate_limited',
    extras: {
      headers: {
        // An external rate-limit service may not say what the limit is.
        ...(limit !== undefined ? { 'ratelimit-limit': String(limit) } : {}),
        'ratelimit-remaining': String(remaining),
        'ratelimit-reset': String(resetS),
        'retry-after': String(resetS),
      },
      details: [anyPack(RetryInfoSchema, create(RetryInfoSchema, { retryDelay: delay }))],
    },
  };
}

import { randomUUID } from 'node:crypto';

type InHeaders = Record<string, string | string[] | undefined>;

/**
 * The exchange's request id, decided once at the start of the pipeline so the
 * upstream request, the transcoder's calls, local replies and the access log
 * all carry the same value. A client's `x-request-id` is kept only when the
 * listener trusts hops in front of it (`trustedHops` > 0); otherwise anyone
 * could pick ids that collide with or impersonate another request's.
 */
export function decideRequestId(h: InHeaders, trustedHops: number): string {
  const rid = h['x-request-id'];
  return trustedHops > 0 && typeof rid === 'string' && rid.length > 0 ? rid : randomUUID();
}

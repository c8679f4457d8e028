import type { Clock } from '../core/clock.js';

/** What the live view groups by; `path` feeds `outrigger top`. */
export const LIVE_DIMENSIONS = ['route', 'cluster', 'upstream', 'path'] as const;
export type LiveDimension = (typeof LIVE_DIMENSIONS)[number];

/** The fields of a finished exchange the window reads. */
export interface LiveSample {
  readonly route: string;
  readonly cluster: string;
  readonly upstream: string | undefined;
  readonly path: string;
  readonly status: number;
  readonly grpc_status: string | undefined;
  readonly duration_ms: number;
}

export interface LiveRow {
  readonly key: string;
  readonly requests: number;
  readonly success: number;
  /** successes / requests, or null with no requests in the window. */
  readonly success_rate: number | null;
  readonly rps: number;
  readonly p50_ms: number | null;
  readonly p95_ms: number | null;
  readonly p99_ms: number | null;
}

export interface LiveOptions {
  readonly windowMs?: number;
  readonly bucketMs?: number;
  /** Distinct keys kept per dimension; later keys are counted under `other`. */
  readonly maxKeys?: number;
}

/**
 * Latency bucket upper bounds (ms): 0.1 ms growing by 25 % to ~5 minutes, so
 * a percentile is reported within 25 % of the truth with a fixed, small array.
 */
const LATENCY_BOUNDS: readonly number[] = (() => {
  const b: number[] = [];
  for (let v = 0.1; v < 300_000; v *= 1.25) b.push(Math.round(v * 1000) / 1000);
  b.push(Infinity);
  return b;
})();

export const OTHER_KEY = 'other';

/** One key's counts over the window (see LiveStats.counts). */
export interface LiveCounts {
  readonly key: string;
  readonly requests: number;
  readonly success: number;
  /** Requests per latency bucket. */
  readonly hist: readonly number[];
}

/** Adds up the counts of several windows (the workers' of one sidecar) key by key. */
export function sumLiveCounts(parts: readonly (readonly LiveCounts[])[]): LiveCounts[] {
  const by = new Map<string, { key: string; requests: number; success: number; hist: number[] }>();
  for (const part of parts) {
    for (const c of part) {
      const t = by.get(c.key);
      if (!t) {
        by.set(c.key, { key: c.key, requests: c.requests, success: c.success, hist: [...c.hist] });
        continue;
      }
      t.requests += c.requests;
      t.success += c.success;
      for (let i = 0; i < t.hist.length; i++) t.hist[i]! += c.hist[i] ?? 0;
    }
  }
  return [...by.values()];
}

/** Rows from window counts, busiest first. */
export function liveRows(counts: readonly LiveCounts[], windowMs: number): LiveRow[] {
  const seconds = windowMs / 1000;
  const rows: LiveRow[] = counts.map(({ key, requests, success, hist }) => ({
    key,
    requests,
    success,
    success_rate: success / requests,
    rps: Math.round((requests / seconds) * 1000) / 1000,
    p50_ms: quantile(hist, requests, 0.5),
    p95_ms: quantile(hist, requests, 0.95),
    p99_ms: quantile(hist, requests, 0.99),
  }));
  rows.sort((a, b) => b.requests - a.requests || (a.key < b.key ? -1 : 1));
  return rows;
}

class Slot {
  index = -1;
  requests = 0;
  success = 0;
  readonly latency = new Uint32Array(LATENCY_BOUNDS.length);

  reset(index: number): void {
    this.index = index;
    this.requests = 0;
    this.success = 0;
    this.latency.fill(0);
  }
}

/** One key's ring of time buckets. */
class Ring {
  readonly slots: Slot[];
  constructor(n: number) {
    this.slots = Array.from({ length: n }, () => new Slot());
  }
}

/**
 * A rolling window (by default the last 60 s in 10 s buckets, on the
 * injected clock) of request count, successes and a latency histogram per
 * route, cluster, upstream endpoint and path: what `outrigger stat` and
 * `outrigger top` show, without Prometheus. Memory is bounded: keys per
 * dimension × buckets × a fixed histogram.
 */
export class LiveStats {
  readonly windowMs: number;
  readonly bucketMs: number;
  private readonly maxKeys: number;
  private readonly rings = new Map<LiveDimension, Map<string, Ring>>(LIVE_DIMENSIONS.map((d) => [d, new Map()]));

  constructor(
    private readonly clock: Clock,
    opts: LiveOptions = {},
  ) {
    this.bucketMs = opts.bucketMs ?? 10_000;
    this.windowMs = opts.windowMs ?? 60_000;
    this.maxKeys = opts.maxKeys ?? 256;
  }

  record(s: LiveSample): void {
    const index = Math.floor(this.clock.monotonicMs() / this.bucketMs);
    const ok = isSuccess(s.status, s.grpc_status);
    const lat = latencyBucket(s.duration_ms);
    this.add('route', s.route || 'none', index, ok, lat);
    this.add('cluster', s.cluster || 'none', index, ok, lat);
    this.add('upstream', s.upstream ?? 'none', index, ok, lat);
    // The exchange's path is the request target: group by path, not by query string.
    const q = s.path.indexOf('?');
    this.add('path', q < 0 ? s.path : s.path.slice(0, q), index, ok, lat);
  }

  /** The window's rows for one dimension, busiest first. */
  snapshot(by: LiveDimension): LiveRow[] {
    return liveRows(this.counts(by), this.windowMs);
  }

  /**
   * The window's raw counts for one dimension (latency as histogram bucket
   * counts): what `--concurrency N` workers send the primary, which adds
   * them up key by key and turns the sum into rows (exact percentiles).
   */
  counts(by: LiveDimension): LiveCounts[] {
    const now = Math.floor(this.clock.monotonicMs() / this.bucketMs);
    const n = this.slotCount();
    const out: LiveCounts[] = [];
    for (const [key, ring] of this.rings.get(by)!) {
      let requests = 0;
      let success = 0;
      const hist = new Array<number>(LATENCY_BOUNDS.length).fill(0);
      for (const s of ring.slots) {
        if (s.index < 0 || s.index <= now - n) continue;
        requests += s.requests;
        success += s.success;
        for (let i = 0; i < hist.length; i++) hist[i]! += s.latency[i]!;
      }
      if (requests > 0) out.push({ key, requests, success, hist });
    }
    return out;
  }

  private slotCount(): number {
    return Math.max(1, Math.ceil(this.windowMs / this.bucketMs));
  }

  private add(by: LiveDimension, key: string, index: number, ok: boolean, lat: number): void {
    const m = this.rings.get(by)!;
    let ring = m.get(key);
    if (!ring) {
      if (m.size >= this.maxKeys) {
        key = OTHER_KEY;
        ring = m.get(key);
      }
      if (!ring) {
        ring = new Ring(this.slotCount());
        m.set(key, ring);
      }
    }
    const slot = ring.slots[index % ring.slots.length]!;
    if (slot.index !== index) slot.reset(index);
    slot.requests++;
    if (ok) slot.success++;
    slot.latency[lat]!++;
  }
}

/** Linkerd's rule: a response is a failure when it is a 5xx, never arrived, or carries a non-OK grpc-status. */
export function isSuccess(status: number, grpcStatus: string | undefined): boolean {
  if (status === 0 || status >= 500) return false;
  return grpcStatus === undefined || grpcStatus === '0';
}

function latencyBucket(ms: number): number {
  let lo = 0;
  let hi = LATENCY_BOUNDS.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ms <= LATENCY_BOUNDS[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The upper bound of the bucket holding the q-th request (the last finite bound for the overflow bucket). */
function quantile(hist: ArrayLike<number>, total: number, q: number): number {
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]!;
    if (seen >= rank) return Number.isFinite(LATENCY_BOUNDS[i]!) ? LATENCY_BOUNDS[i]! : LATENCY_BOUNDS[i - 1]!;
  }
  return LATENCY_BOUNDS[LATENCY_BOUNDS.length - 2]!;
}

import { clone } from '@bufbuild/protobuf';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { durationMs } from '../../src/core/duration.js';
import { LocalRateLimitSchema, type LocalRateLimit } from '../../src/gen/outrigger/filters/local_rate_limit/v1/local_rate_limit_pb.js';
import type { FilterConfigSource, FilterEntry, FilterOverride } from '../../src/proxy/filters/filter-chain.js';

/** Which worker this is (0-based) of how many. */
export interface WorkerShare {
  readonly index: number;
  readonly count: number;
}

/**
 * Worker `index`'s part of `total`, so that the parts of all `count` workers
 * add up to `total` exactly: ⌊total/count⌋, one more for the first
 * `total mod count` workers. Never below 1: a limit smaller than the number
 * of workers admits up to one per worker (docs/sidecar.md).
 */
export function shareOf(total: number, s: WorkerShare): number {
  const base = Math.floor(total / s.count);
  return Math.max(1, base + (s.index < total % s.count ? 1 : 0));
}

/**
 * Local rate limits with `--concurrency N`: each worker keeps its own
 * counters (no lock, no IPC per request), so each gets a deterministic share
 * of every limit: a window's `requests` and a bucket's `maxTokens` are split
 * with `shareOf`, and a bucket refills N times slower (same tokens per fill,
 * N × the interval), so the sidecar as a whole admits the configured rate
 * when the OS spreads connections evenly. The config the primary publishes
 * (and `/config_dump` shows) is unchanged: only what the workers compile.
 */
export function shareLocalRateLimit(cfg: LocalRateLimit, s: WorkerShare): LocalRateLimit {
  if (s.count <= 1) return cfg;
  const out = clone(LocalRateLimitSchema, cfg);
  for (const l of out.limits) {
    const a = l.algorithm;
    if (a.case === 'tokenBucket') {
      a.value.maxTokens = shareOf(a.value.maxTokens, s);
      // Unset or invalid intervals are left to the filter's own validation.
      const ms = durationMs(a.value.fillInterval, 0);
      if (ms > 0) a.value.fillInterval = durationFromMs(ms * s.count);
    } else if (a.case === 'fixedWindow' || a.case === 'slidingWindow') {
      a.value.requests = shareOf(a.value.requests, s);
    }
  }
  return out;
}

/** The filter config source of a worker: `inner`'s, with every localRateLimit config shared out (compiled once per version). */
export function sharedRateLimits(inner: FilterConfigSource, s: WorkerShare): FilterConfigSource {
  if (s.count <= 1) return inner;
  const memo = new WeakMap<object, unknown>();
  const share = (type: string | undefined, config: unknown): unknown => {
    if (type !== 'localRateLimit' || typeof config !== 'object' || config === null) return config;
    let v = memo.get(config);
    if (v === undefined) memo.set(config, (v = shareLocalRateLimit(config as LocalRateLimit, s)));
    return v;
  };
  return {
    entriesOf(listener) {
      return inner.entriesOf(listener).map((e): FilterEntry => ({ ...e, config: share(e.type ?? e.name, e.config) }));
    },
    overridesOf(route) {
      const o = inner.overridesOf(route);
      if (o === undefined) return undefined;
      const out = new Map<string, FilterOverride>();
      for (const [name, v] of o) out.set(name, 'config' in v ? { ...v, config: share(v.type, v.config) } : v);
      return out;
    },
  };
}

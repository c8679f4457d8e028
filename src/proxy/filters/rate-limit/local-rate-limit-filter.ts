import { LRUCache } from 'lru-cache';
import type { Clock } from '../../../core/clock.js';
import { durationMs } from '../../../core/duration.js';
import type { LocalRateLimit, RateLimit } from '../../../gen/outrigger/filters/local_rate_limit/v1/local_rate_limit_pb.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { FilterFactory, HttpFilter } from '../filter.js';
import { fixedWindow, slidingWindow, tokenBucket, type Algorithm } from './algorithms.js';
import { compileKey, type KeyOf } from './limit-key.js';
import { rateLimited } from './rate-limited.js';

const DEFAULT_MAX_KEYS = 10_000;

export interface LocalRateLimitDeps {
  readonly clock: Clock;
  readonly audit: AuditLog;
}

interface CompiledLimit {
  readonly name: string;
  readonly kind: string;
  readonly keyOf: KeyOf;
  readonly algo: Algorithm<object>;
  /** Per key value, least recently used forgotten first: memory stays bounded whatever clients send. */
  readonly states: LRUCache<string, object>;
}

/**
 * Per-sidecar limits with no I/O: each request takes one unit from every
 * limit that applies to it; the first limit without quota refuses it (429).
 * Counters live in the compiled filter, so a new config version starts them
 * afresh (docs/filters.md).
 */
export function localRateLimitFactory(deps: LocalRateLimitDeps): FilterFactory<LocalRateLimit> {
  return {
    name: 'localRateLimit',
    compile(config, name) {
      const max = config.maxKeys || DEFAULT_MAX_KEYS;
      const limits = config.limits.map((l, i) => compileLimit(l, `limits[${i}]`, max));
      if (limits.length === 0) throw new Error('limits: at least one limit is required');
      return localRateLimitFilter(name, limits, deps);
    },
  };
}

function compileLimit(l: RateLimit, at: string, maxKeys: number): CompiledLimit {
  const { keyOf, kind } = compileKey(l.key, `${at}.key`);
  return { name: l.name || at, kind, keyOf, algo: compileAlgorithm(l, at) as Algorithm<object>, states: new LRUCache({ max: maxKeys }) };
}

/** A limit's algorithm and its numbers (validated), shared by the local and the global filter. */
export type AlgorithmParams =
  | { readonly kind: 'tb'; readonly limit: number; readonly perFill: number; readonly intervalMs: number }
  | { readonly kind: 'fw' | 'sw'; readonly limit: number; readonly windowMs: number };

export function algorithmParams(l: RateLimit, at: string): AlgorithmParams {
  const a = l.algorithm;
  const positive = (v: number, path: string): number => {
    if (!(v > 0)) throw new Error(`${at}.${path}: must be greater than 0`);
    return v;
  };
  switch (a.case) {
    case 'tokenBucket':
      return {
        kind: 'tb',
        limit: positive(a.value.maxTokens, 'tokenBucket.maxTokens'),
        perFill: a.value.tokensPerFill || 1,
        intervalMs: positive(durationMs(a.value.fillInterval, 0), 'tokenBucket.fillInterval'),
      };
    case 'fixedWindow':
    case 'slidingWindow':
      return {
        kind: a.case === 'fixedWindow' ? 'fw' : 'sw',
        limit: positive(a.value.requests, `${a.case}.requests`),
        windowMs: positive(durationMs(a.value.window, 0), `${a.case}.window`),
      };
    default:
      throw new Error(`${at}: set one of tokenBucket, fixedWindow, slidingWindow`);
  }
}

function compileAlgorithm(l: RateLimit, at: string): Algorithm<unknown> {
  const p = algorithmParams(l, at);
  if (p.kind === 'tb') return tokenBucket(p.limit, p.perFill, p.intervalMs) as Algorithm<unknown>;
  return (p.kind === 'fw' ? fixedWindow(p.limit, p.windowMs) : slidingWindow(p.limit, p.windowMs)) as Algorithm<unknown>;
}

function localRateLimitFilter(name: string, limits: readonly CompiledLimit[], deps: LocalRateLimitDeps): HttpFilter {
  const { clock, audit } = deps;
  return {
    name,
    onRequestHeaders(ds) {
      const now = clock.monotonicMs();
      for (const l of limits) {
        const key = l.keyOf(ds);
        if (key === undefined) continue;
        let s = l.states.get(key);
        if (s === undefined) l.states.set(key, (s = l.algo.init(now)));
        const d = l.algo.take(s, now);
        if (!d.allowed) {
          audit.record(ds, name, { outcome: 'rate_limited', descriptor: `${l.name} (${l.kind})` });
          return rateLimited(d.limit, d.remaining, d.resetMs);
        }
      }
      return undefined;
    },
  };
}

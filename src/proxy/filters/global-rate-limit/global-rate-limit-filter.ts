import { Redis } from 'ioredis';
import type { Clock } from '../../../core/clock.js';
import { durationMs } from '../../../core/duration.js';
import { FailureMode, type GlobalRateLimit } from '../../../gen/outrigger/filters/global_rate_limit/v1/global_rate_limit_pb.js';
import type { Logger } from 'pino';
import type { AuditLog } from '../audit/audit-log.js';
import type { FilterFactory, FilterVerdict, HttpFilter } from '../filter.js';
import { compileKey, type KeyOf } from '../rate-limit/limit-key.js';
import { algorithmParams, type AlgorithmParams } from '../rate-limit/local-rate-limit-filter.js';
import { rateLimited } from '../rate-limit/rate-limited.js';
import { decide, redisKey, type ScriptArgs } from './redis-limiter.js';
import type { Decision } from '../rate-limit/algorithms.js';

const DEFAULT_DECISION_TIMEOUT_MS = 20;

export interface GlobalRateLimitDeps {
  readonly clock: Clock;
  readonly audit: AuditLog;
  readonly logger?: Logger | undefined;
}

interface CompiledLimit {
  readonly name: string;
  readonly kind: string;
  readonly keyOf: KeyOf;
  readonly limit: number;
  readonly args: ScriptArgs;
}

/**
 * The globalRateLimit filter factory. One Redis client per URL, kept across
 * config versions (a reload does not reconnect); `close()` ends them.
 */
export function globalRateLimitFactory(deps: GlobalRateLimitDeps): FilterFactory<GlobalRateLimit> & { close(): void } {
  const clients = new Map<string, Redis>();
  const clientFor = (url: string): Redis => {
    let c = clients.get(url);
    if (!c) {
      // No offline queue: while Redis is away a decision fails at once (failureMode) instead of piling up.
      c = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, connectionName: 'outrigger-ratelimit' });
      c.on('error', (err: Error) => deps.logger?.debug({ err: err.message }, 'rate-limit redis'));
      clients.set(url, c);
    }
    return c;
  };
  return {
    name: 'globalRateLimit',
    compile(config, name) {
      const url = config.redis?.url ?? '';
      if (!/^rediss?:\/\//.test(url)) throw new Error('redis.url: a redis:// or rediss:// URL is required');
      if (config.limits.length === 0) throw new Error('limits: at least one limit is required');
      const domain = config.domain || name;
      const limits = config.limits.map((l, i): CompiledLimit => {
        const at = `limits[${i}]`;
        const { keyOf, kind } = compileKey(l.key, `${at}.key`);
        const p = algorithmParams(l, at);
        return { name: l.name || at, kind, keyOf, limit: p.limit, args: scriptArgs(p) };
      });
      const timeoutMs = durationMs(config.decisionTimeout, DEFAULT_DECISION_TIMEOUT_MS);
      return globalRateLimitFilter(name, domain, limits, clientFor(url), timeoutMs, config.failureMode === FailureMode.DENY, deps);
    },
    close() {
      for (const c of clients.values()) c.disconnect();
      clients.clear();
    },
  };
}

function scriptArgs(p: AlgorithmParams): ScriptArgs {
  return p.kind === 'tb' ? ['tb', p.limit, p.perFill, p.intervalMs] : [p.kind, p.limit, p.windowMs];
}

function globalRateLimitFilter(
  name: string,
  domain: string,
  limits: readonly CompiledLimit[],
  redis: Redis,
  timeoutMs: number,
  failClosed: boolean,
  deps: GlobalRateLimitDeps,
): HttpFilter {
  const { clock, audit } = deps;
  return {
    name,
    onRequestHeaders(ds) {
      const calls: Promise<Decision>[] = [];
      const applied: CompiledLimit[] = [];
      for (const l of limits) {
        const v = l.keyOf(ds);
        if (v === undefined) continue;
        applied.push(l);
        calls.push(decide(redis, redisKey(domain, l.name, v), l.args, l.limit));
      }
      if (calls.length === 0) return undefined;
      return new Promise<FilterVerdict>((resolve) => {
        let settled = false;
        const timer = clock.setTimer(timeoutMs, () => fail('timeout'));
        // Redis slow or down: failureMode decides; a late answer is ignored.
        function fail(reason: string): void {
          if (settled) return;
          settled = true;
          timer.cancel();
          audit.record(ds, name, { outcome: 'service_error', reason: `redis_${reason}${failClosed ? '' : ' (allowed)'}` });
          resolve(failClosed ? { code: 'rate_limit_service_error' } : undefined);
        }
        Promise.all(calls).then(
          (ds_) => {
            if (settled) return;
            settled = true;
            timer.cancel();
            const i = ds_.findIndex((d) => !d.allowed);
            if (i < 0) return resolve(undefined);
            const d = ds_[i]!;
            const l = applied[i]!;
            audit.record(ds, name, { outcome: 'rate_limited', descriptor: `${l.name} (${l.kind})` });
            resolve(rateLimited(d.limit, d.remaining, d.resetMs));
          },
          () => fail('error'),
        );
      });
    },
  };
}

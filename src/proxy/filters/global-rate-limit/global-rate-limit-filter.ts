import type { Clock, Timer } from '../../../core/clock.js';
import { durationMs } from '../../../core/duration.js';
import { FailureMode, type GlobalRateLimit } from '../../../gen/outrigger/filters/global_rate_limit/v1/global_rate_limit_pb.js';
import type { Logger } from 'pino';
import type { AuditLog } from '../audit/audit-log.js';
import type { FilterFactory, FilterVerdict, HttpFilter } from '../filter.js';
import { compileKey } from '../rate-limit/limit-key.js';
import { algorithmParams, type AlgorithmParams } from '../rate-limit/local-rate-limit-filter.js';
import { rateLimited } from '../rate-limit/rate-limited.js';
import { decide, redisKey, type ScriptArgs } from './redis-limiter.js';
import { FIRST_CONNECT_WAIT_MS, RedisClient } from './redis-clients.js';
import { compileServiceBackend } from './rls-backend.js';
import { BackendUnavailable, type CompiledLimit, type LimitBackend } from './limit-backend.js';

const DEFAULT_DECISION_TIMEOUT_MS = 20;

export interface GlobalRateLimitDeps {
  readonly clock: Clock;
  readonly audit: AuditLog;
  readonly logger?: Logger | undefined;
}

/**
 * The globalRateLimit filter factory. One Redis client per URL, kept across
 * config versions (a reload does not reconnect); `close()` ends them. The
 * `service` backend calls an Envoy rate-limit service (rls-backend.ts).
 */
export function globalRateLimitFactory(deps: GlobalRateLimitDeps): FilterFactory<GlobalRateLimit> & { close(): void } {
  const clients = new Map<string, RedisClient>();
  const clientFor = (url: string): RedisClient => {
    let c = clients.get(url);
    if (!c) {
      c = new RedisClient(url, deps.logger);
      clients.set(url, c);
    }
    return c;
  };
  return {
    name: 'globalRateLimit',
    compile(config, name, ctx) {
      if (config.limits.length === 0) throw new Error('limits: at least one limit is required');
      const domain = config.domain || name;
      // With a service, its own timeout (if set) bounds the decision, as Envoy's rate limit filter's `timeout`.
      const timeoutMs = durationMs(config.service?.timeout ?? config.decisionTimeout, DEFAULT_DECISION_TIMEOUT_MS);
      const limits = config.limits.map((l, i): CompiledLimit => {
        const { keyOf, kind } = compileKey(l.key, `limits[${i}].key`);
        return { name: l.name || `limits[${i}]`, configuredName: l.name, kind, keyOf, index: i };
      });
      let backend: LimitBackend;
      if (config.service) {
        backend = compileServiceBackend(config.service, domain, timeoutMs, ctx?.clusters);
      } else {
        const url = config.redis?.url ?? '';
        if (!/^rediss?:\/\//.test(url)) throw new Error('redis.url: a redis:// or rediss:// URL (or a service) is required');
        const params = config.limits.map((l, i) => algorithmParams(l, `limits[${i}]`));
        backend = redisBackend(clientFor(url), domain, params, deps.clock, Math.max(FIRST_CONNECT_WAIT_MS, timeoutMs));
      }
      return globalRateLimitFilter(name, limits, backend, timeoutMs, config.failureMode === FailureMode.DENY, deps);
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

/** Limits on Redis: one atomic script per applied limit, all in parallel. */
function redisBackend(client: RedisClient, domain: string, params: readonly AlgorithmParams[], clock: Clock, firstWaitMs: number): LimitBackend {
  const args = params.map(scriptArgs);
  return {
    kind: 'redis',
    // Until the client has connected once, a decision waits for it (at most firstWaitMs).
    firstWait: () => (client.everReady ? undefined : client.whenFirstReady(clock, firstWaitMs)),
    async decide(_ds, applied, values) {
      const ds_ = await Promise.all(applied.map((l, i) => decide(client.redis, redisKey(domain, l.name, values[i]!), args[l.index]!, params[l.index]!.limit)));
      const i = ds_.findIndex((d) => !d.allowed);
      if (i < 0) return { allowed: true };
      const d = ds_[i]!;
      return { allowed: false, limit: applied[i]!, verdict: rateLimited(d.limit, d.remaining, d.resetMs) };
    },
  };
}

function globalRateLimitFilter(
  name: string,
  limits: readonly CompiledLimit[],
  backend: LimitBackend,
  timeoutMs: number,
  failClosed: boolean,
  deps: GlobalRateLimitDeps,
): HttpFilter {
  const { clock, audit } = deps;
  return {
    name,
    onRequestHeaders(ds) {
      let applied: CompiledLimit[] | undefined;
      let values: string[] | undefined;
      for (const l of limits) {
        const v = l.keyOf(ds);
        if (v === undefined) continue;
        (applied ??= []).push(l);
        (values ??= []).push(v);
      }
      if (applied === undefined) return undefined;
      return new Promise<FilterVerdict>((resolve) => {
        let settled = false;
        let timer: Timer | undefined;
        // The backend slow or down: failureMode decides; a late answer is ignored.
        const fail = (reason: string): void => {
          if (settled) return;
          settled = true;
          timer?.cancel();
          audit.record(ds, name, { outcome: 'service_error', reason: `${backend.kind}_${reason}${failClosed ? '' : ' (allowed)'}` });
          resolve(failClosed ? { code: 'rate_limit_service_error' } : undefined);
        };
        const run = (): void => {
          timer = clock.setTimer(timeoutMs, () => fail('timeout'));
          backend.decide(ds, applied, values!).then(
            (a) => {
              if (settled) return;
              settled = true;
              timer!.cancel();
              // Headers the service asks for go on the response either way (Envoy: response_headers_to_add).
              if (a.responseHeaders) for (const [k, v] of a.responseHeaders) ds.addResponseHeader(k, v);
              if (a.allowed) {
                if (a.requestHeaders) for (const [k, v] of a.requestHeaders) ds.headers[k] = v;
                return resolve(undefined);
              }
              audit.record(ds, name, { outcome: 'rate_limited', descriptor: `${a.limit.name} (${a.limit.kind})` });
              resolve(a.verdict);
            },
            (err: unknown) => fail(err instanceof BackendUnavailable ? err.reason : 'error'),
          );
        };
        const first = backend.firstWait?.();
        if (first === undefined) return run();
        void first.then((ok) => (ok ? run() : fail('unavailable')));
      });
    },
  };
}

import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.js';
import type { Listener } from '../../gen/outrigger/config/v1/listener_pb.js';
import type { CompiledRoute } from '../router/types.js';
import { AuditLog } from './audit/audit-log.js';
import { FilterRegistry, type FilterConfigSource, type FilterEntry, type FilterOverride } from './filter-chain.js';
import { jwtAuthnFactory } from './jwt-authn/jwt-authn-filter.js';
import { apiKeysFactory } from './api-keys/api-keys-filter.js';
import { localRateLimitFactory } from './rate-limit/local-rate-limit-filter.js';
import { rbacFactory } from './rbac/rbac-filter.js';
import { globalRateLimitFactory } from './global-rate-limit/global-rate-limit-filter.js';
import type { JwksFetcher } from './jwt-authn/remote-jwks.js';
import { corsFactory } from './cors/cors-filter.js';
import { headerMutationFactory } from './header-mutation/header-mutation-filter.js';
import { securityHeadersFactory } from './security-headers/security-headers-filter.js';
import { compressionFactory } from './compression/compression-filter.js';
import { cacheFactory } from './cache/cache-filter.js';
import { pluginFactory } from './plugin/plugin-filter.js';
import type { ModuleLoader } from '../../core/module-loader.js';

export interface BuiltinFilterDeps {
  readonly clock: Clock;
  readonly registry: Registry;
  /** Where security events are written (`--audit-log`); undefined: counted only. */
  readonly auditLog?: Logger | undefined;
  readonly jwksFetcher?: JwksFetcher;
  /** Operational log (Redis connection trouble at debug level). */
  readonly logger?: Logger | undefined;
  /** Where plugin modules are imported (docs/plugins.md); without it `plugin` filters are unknown. */
  readonly modules?: ModuleLoader | undefined;
}

/**
 * The filters the sidecar ships, registered once by the composition root, and
 * the config source reading listeners' `httpFilters` and the overrides of
 * virtual hosts and routes (docs/filters.md).
 */
export function builtinFilters(deps: BuiltinFilterDeps): {
  registry: FilterRegistry;
  config: FilterConfigSource;
  /** Deletes cache entries under a key prefix in every cache filter's storage (admin POST /cache/purge). */
  purgeCache(prefix: string): Promise<number>;
  close(): void;
} {
  const audit = new AuditLog(deps.auditLog, deps.registry);
  const apiKeys = apiKeysFactory({ audit });
  const global = globalRateLimitFactory({ clock: deps.clock, audit, logger: deps.logger });
  const cache = cacheFactory({ clock: deps.clock, registry: deps.registry, logger: deps.logger });
  const registry = new FilterRegistry([
    jwtAuthnFactory({ clock: deps.clock, audit, ...(deps.jwksFetcher ? { fetcher: deps.jwksFetcher } : {}) }),
    apiKeys,
    localRateLimitFactory({ clock: deps.clock, audit }),
    rbacFactory({ audit }),
    global,
    corsFactory(),
    headerMutationFactory(),
    compressionFactory({ registry: deps.registry }),
    securityHeadersFactory(),
    cache,
  ]);
  if (deps.modules) registry.register(pluginFactory({ modules: deps.modules, registry: deps.registry, logger: deps.logger }));
  // close(): stops watching key files and disconnects from Redis (sidecar shutdown).
  const close = (): void => {
    apiKeys.close();
    global.close();
    cache.close();
  };
  return { registry, config: CONFIG_FILTER_SOURCE, purgeCache: (p) => cache.purge(p), close };
}

/**
 * Listener `httpFilters[]`: each entry's type is its config's field name, and
 * so is its name unless it has one. Overrides: the virtual host's, then the
 * route's (compiled onto the route by the router).
 */
export const CONFIG_FILTER_SOURCE: FilterConfigSource = {
  entriesOf(listener: Listener): readonly FilterEntry[] {
    const out: FilterEntry[] = [];
    for (const f of listener.httpFilters) {
      if (f.config.case === undefined) continue;
      out.push({ name: f.name || f.config.case, type: f.config.case, config: f.config.value });
    }
    return out;
  },
  overridesOf(route: CompiledRoute): ReadonlyMap<string, FilterOverride> | undefined {
    const o = route.filterOverrides;
    if (o === undefined) return undefined;
    const out = new Map<string, FilterOverride>();
    for (const [name, v] of o) {
      const ov = v.override;
      if (ov.case === undefined || (ov.case === 'disabled' && !ov.value)) continue;
      out.set(name, ov.case === 'disabled' ? { disabled: true } : { config: ov.value, type: ov.case });
    }
    return out.size === 0 ? undefined : out;
  },
};

import type { Registry } from 'prom-client';
import { HeapOverload } from '../src/proxy/overload/heap-overload.js';
import { FloodGc } from '../src/proxy/overload/flood-gc.js';
import type { Clock } from '../src/core/clock.js';
import type { Random } from '../src/core/random.js';
import type { LocalityName } from '../src/core/locality.js';
import type { SvidSource } from '../src/core/svid.js';
import type { Logger } from '../src/observability/logger.js';
import { ProxyMetrics } from '../src/observability/proxy-metrics.js';
import { buildTelemetry } from '../src/observability/telemetry-setup.js';
import type { ExchangeTelemetry } from '../src/observability/exchange-telemetry.js';
import { ListenerManager } from '../src/proxy/listener/listener-manager.js';
import { H1Pool } from '../src/proxy/upstream/h1-pool.js';
import { H2Pool } from '../src/proxy/upstream/h2-pool.js';
import type { ProxyContext } from '../src/proxy/context.js';
import { OriginalDestinations } from '../src/proxy/upstream/original-dst.js';
import { originalDstAddon } from '../src/proxy/upstream/original-dst-addon.js';
import { builtinFilters } from '../src/proxy/filters/builtin.js';
import type { FilterConfigSource, FilterRegistry } from '../src/proxy/filters/filter-chain.js';
import { ModuleLoader } from '../src/core/module-loader.js';
import { installPluginFaultGuard } from '../src/proxy/filters/plugin/plugin-fault-guard.js';
import type { HeapOverloadOptions } from '../src/proxy/overload/heap-overload.js';
import type { TelemetryOptions } from '../src/observability/telemetry-setup.js';
import type { AddonStatus } from '../src/proxy/upstream/original-dst-addon.js';
import { installAsyncResourceBindFix } from '../src/core/async-resource-bind.js';

export interface DataPathOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly accessLog: Logger;
  readonly registry: Registry;
  /** The workload certificate (the manager in a single process, the primary's copy in a worker). */
  readonly identity: SvidSource | undefined;
  readonly locality: LocalityName | undefined;
  /** Rewrites where filter configs come from (a worker's share of the local rate limits). */
  readonly filterConfig?: (c: FilterConfigSource) => FilterConfigSource;
  /** The sidecar's options the data path reads (SidecarOptions has them all; see there). */
  readonly sidecar: DataPathSettings;
}

export interface DataPathSettings {
  readonly drainTimeoutMs: number;
  readonly overload?: Omit<HeapOverloadOptions, 'clock' | 'logger' | 'events'> | undefined;
  readonly filters?: { registry: FilterRegistry; config: FilterConfigSource } | undefined;
  readonly auditLog?: Logger | undefined;
  readonly telemetry?: Omit<TelemetryOptions, 'clock' | 'registry'> | undefined;
  readonly originalDstAddon?: AddonStatus | undefined;
  readonly random?: Random | undefined;
  /** Where relative plugin module paths of control-plane config are resolved (SidecarOptions.pluginDir). */
  readonly pluginDir?: string | undefined;
  /** A plugin's stray background error is logged and counted instead of ending the process (the CLI sets it: plugin-fault-guard.ts). */
  readonly guardPluginFaults?: boolean | undefined;
}

/** What serves traffic: the listeners and everything they read per request. */
export interface DataPath {
  readonly ctx: ProxyContext;
  readonly listeners: ListenerManager;
  readonly telemetry: ExchangeTelemetry;
  readonly overload: HeapOverload;
  /** Stops the filters' background work (key-file watches, Redis). */
  closeFilters(): void;
  /** Deletes the cache filters' entries under a key prefix (admin POST /cache/purge); undefined with injected filters. */
  readonly purgeCache: ((prefix: string) => Promise<number>) | undefined;
}

/**
 * The data path of one process (the only one, or one worker of
 * `--concurrency N`): metrics, telemetry, overload manager, upstream pools,
 * filters and the ListenerManager that applies snapshots. Config flows in
 * through `listeners.apply`; this builds nothing that fetches config.
 */
export async function buildDataPath(o: DataPathOptions): Promise<DataPath> {
  const { clock, logger, accessLog, registry } = o;
  const opts = o.sidecar;
  // node:http2's client request() would otherwise keep each request's objects alive through scavenges (async-resource-bind.ts).
  installAsyncResourceBindFix();
  const metrics = new ProxyMetrics(registry);
  // Our principal for Istio's labels: read when a series is first made (the SVID may arrive later).
  const telemetry = await buildTelemetry({ ...opts.telemetry, clock, registry, selfPrincipal: () => o.identity?.current()?.spiffeId });
  const lifecycle = { draining: false };
  const overload = new HeapOverload({
    ...opts.overload,
    clock,
    logger,
    events: {
      onTransition: (on) => {
        metrics.overloaded.set(on ? 1 : 0);
        metrics.overloadTransitions.inc({ state: on ? 'overloaded' : 'normal' });
      },
      onSample: (fraction) => metrics.heapUsedFraction.set(fraction),
    },
  });
  // The SO_ORIGINAL_DST addon is loaded once here; without it ORIGINAL_DST clusters degrade (docs/injector.md).
  const addon = opts.originalDstAddon ?? originalDstAddon();
  const trim = addon.addon?.mallocTrim?.bind(addon.addon);
  const floodGc = new FloodGc({ clock, ...(trim ? { trim } : {}), onCollect: () => metrics.floodCollections.inc() });
  const h2 = new H2Pool({ clock, logger, identity: o.identity });
  const h1 = new H1Pool(o.identity, logger);
  const ctx: ProxyContext = {
    clock,
    logger,
    accessLog,
    metrics,
    telemetry,
    h2,
    h1,
    originalDst: new OriginalDestinations({ clock, logger, h1, h2, addon }),
    lifecycle,
    overload,
    floodGc,
    identity: o.identity,
  };
  // Plugin modules (filters, custom health checks), imported per config version: docs/plugins.md.
  const modules = new ModuleLoader(opts.pluginDir ?? process.cwd());
  const unguard = opts.guardPluginFaults ? installPluginFaultGuard(modules, logger, registry) : undefined;
  const builtin = opts.filters ? undefined : builtinFilters({ clock, registry, auditLog: opts.auditLog, logger, modules });
  const filters = opts.filters ?? builtin!;
  const listeners = new ListenerManager(ctx, opts.drainTimeoutMs, { filters: filters.registry, filterConfig: o.filterConfig ? o.filterConfig(filters.config) : filters.config, locality: o.locality, modules, ...(opts.random ? { random: opts.random } : {}) });
  return { ctx, listeners, telemetry, overload, closeFilters: () => {
      floodGc.stop();
      builtin?.close();
      unguard?.();
    }, purgeCache: builtin ? (p) => builtin.purgeCache(p) : undefined };
}

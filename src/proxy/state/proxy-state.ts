import type { ConfigSnapshot } from '../../config/snapshot.js';
import type { Listener } from '../../gen/outrigger/config/v1/listener_pb.js';
import { durationMs } from '../../core/duration.js';
import { RouteTable } from '../router/index.js';
import { ClusterRuntime } from '../upstream/cluster.js';
import type { Transcode } from '../../gen/outrigger/config/v1/route_pb.js';
import { RouteCompileError } from '../router/types.js';
import type { DescriptorSources } from '../transcode/descriptor-sources.js';
import type { DescriptorPool } from '../transcode/descriptors.js';
import { Transcoder } from '../transcode/transcoder.js';
import { ListenerOpenApi } from '../transcode/listener-openapi.js';
import { FilterChain, FilterRegistry, NO_FILTER_CONFIG, type FilterConfigSource, type FilterEntry, type FilterOverride } from '../filters/filter-chain.js';
import type { FilterClusterCalls, HttpFilter } from '../filters/filter.js';
import type { ProxyContext } from '../context.js';
import { unaryCaller } from './filter-env.js';
import { transcodeCorsFilter } from '../filters/transcode-cors/transcode-cors-filter.js';
import { CORS_FILTER_TYPE } from '../filters/cors/cors-filter.js';
import type { CompiledRoute } from '../router/types.js';
import type { PolicyDeps } from '../upstream/lb/policies.js';
import { Cluster_DiscoveryType, type Endpoint } from '../../gen/outrigger/config/v1/cluster_pb.js';
import { systemRandom, type Random } from '../../core/random.js';

export const DEFAULT_DETECT_TIMEOUT_MS = 100;
export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;
export const DEFAULT_MAX_CONNECTIONS = 10_000;
export const DEFAULT_MAX_CONCURRENT_STREAMS = 1000;
export const DEFAULT_MAX_HEADER_BYTES = 65_536;
export const DEFAULT_REQUEST_HEADERS_TIMEOUT_MS = 10_000;

/** Header values that never reach a log line, whatever the config says. */
const ALWAYS_SENSITIVE = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'];

/** What a listener needs at request time, resolved once per config version. */
export interface ListenerSettings {
  readonly name: string;
  readonly config: Listener;
  readonly routes: RouteTable | undefined;
  readonly defaultCluster: string;
  readonly opaque: boolean;
  readonly detectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly trustedHops: number;
  readonly maxConnections: number;
  readonly maxConcurrentStreams: number;
  readonly maxHeaderBytes: number;
  /** limits.requestHeadersTimeout (docs/sidecar.md: what it bounds for HTTP/1.1, HTTP/2 and silent clients). */
  readonly requestHeadersTimeoutMs: number;
  /** `limits.requestHeadersTimeout` was set: HTTP/2 connections then also get a first-HEADERS deadline. */
  readonly requestHeadersTimeoutExplicit: boolean;
  /** 0 = unlimited. */
  readonly maxRequestBodyBytes: number;
  readonly accessLog: boolean;
  readonly logHeaders: readonly string[];
  readonly sensitiveHeaders: ReadonlySet<string>;
  /** `tracing.disabled`: this listener reads and writes no trace context (when the sidecar traces at all). */
  readonly tracingOff: boolean;
  /** `tracing.sampling`: the ratio of new traces recorded here; undefined: the sidecar's `--trace-sampling`. */
  readonly traceSampling: number | undefined;
  /** OpenAPI documents of the listener's transcoding routes, for requests no route matches (docs/transcoding.md). */
  readonly openapi: ListenerOpenApi | undefined;
  /**
   * The filter chain of each route that has one (compiled once per version:
   * the listener's filters with the route's overrides, then the filters the
   * route's action implies); other routes use `chain`.
   */
  readonly chains: ReadonlyMap<CompiledRoute, FilterChain>;
  /** The listener's own chain, for routes without overrides or filters of their own. */
  readonly chain: FilterChain;
}

/** Long-lived parts a state is compiled with (the composition root's registries). */
export interface StateDeps extends PolicyDeps {
  /** Filter factories by name; default: none registered. */
  readonly filters?: FilterRegistry | undefined;
  /** Where listeners' filter entries and routes' overrides come from; default: none. */
  readonly filterConfig?: FilterConfigSource | undefined;
  /** The data path's collaborators: filters calling a cluster (a rate-limit service) use its pools. */
  readonly proxy?: ProxyContext | undefined;
}

/**
 * The compiled, immutable form of one ConfigSnapshot for the data path: route
 * tables, clusters and per-listener settings. A request takes the state of its
 * listener once and uses it to the end, so a swap never changes a request
 * midway.
 */
export interface ProxyState {
  readonly version: string;
  readonly snapshot: ConfigSnapshot;
  readonly listeners: ReadonlyMap<string, ListenerSettings>;
  readonly clusters: ReadonlyMap<string, ClusterRuntime>;
  readonly routeTables: ReadonlyMap<string, RouteTable>;
  /** Compiled transcoders keyed by their route's config message (the compiled route action holds it). */
  readonly transcoders: ReadonlyMap<Transcode, Transcoder>;
  /** Whether any cluster is DISCOVERY_TYPE_ORIGINAL_DST: listeners then look up each connection's original destination. */
  readonly hasOriginalDst: boolean;
  /** The injected randomness of per-request choices: weighted splits, mirror and fault percentages (docs/routing.md). */
  readonly random: Random;
}

/** `sources`: live descriptor sources (watched files, reflection); without it files are read directly. */
export function buildProxyState(snapshot: ConfigSnapshot, sources?: DescriptorSources, deps: StateDeps = {}): ProxyState {
  const routeTables = new Map<string, RouteTable>();
  for (const [name, rc] of snapshot.routeConfigs) routeTables.set(name, RouteTable.compile(rc));
  const clusters = new Map<string, ClusterRuntime>();
  // zoneAwareRouting.localCluster reads another cluster's endpoints (static or EDS) of the same snapshot.
  const endpointsOf = (name: string): readonly Endpoint[] | undefined => {
    const c = snapshot.clusters.get(name);
    if (!c) return undefined;
    return c.type === Cluster_DiscoveryType.EDS ? (snapshot.loadAssignments.get(name)?.endpoints ?? []) : c.endpoints;
  };
  const clusterDeps = { ...deps, endpointsOf };
  for (const [name, c] of snapshot.clusters) clusters.set(name, ClusterRuntime.build(c, snapshot.loadAssignments.get(name), clusterDeps));
  const registry = deps.filters ?? EMPTY_REGISTRY;
  const transcoders = buildTranscoders(snapshot, sources);
  const calls = deps.proxy ? unaryCaller(deps.proxy, clusters) : undefined;
  const listeners = new Map<string, ListenerSettings>();
  for (const [name, l] of snapshot.listeners) {
    const limits = l.limits;
    const routes = l.routeConfig ? routeTables.get(l.routeConfig) : undefined;
    const filterConfig = deps.filterConfig ?? NO_FILTER_CONFIG;
    const entries = filterConfig.entriesOf(l);
    let chain: FilterChain;
    try {
      chain = registry.compile(entries, undefined, [], { clusters: calls });
    } catch (err) {
      throw new RouteCompileError(`Listener/${name}: filters`, (err as Error).message);
    }
    const chains = compileChains(registry, filterConfig, entries, routes, transcoders, calls);
    const sensitive = new Set(ALWAYS_SENSITIVE);
    for (const h of l.accessLog?.sensitiveHeaders ?? []) sensitive.add(h.toLowerCase());
    listeners.set(name, {
      name,
      config: l,
      routes,
      defaultCluster: l.defaultCluster,
      opaque: l.opaque,
      detectTimeoutMs: l.opaque ? 0 : durationMs(l.detectTimeout, DEFAULT_DETECT_TIMEOUT_MS),
      idleTimeoutMs: durationMs(l.idleTimeout, DEFAULT_IDLE_TIMEOUT_MS),
      trustedHops: l.trustedHops,
      maxConnections: limits?.maxConnections || DEFAULT_MAX_CONNECTIONS,
      maxConcurrentStreams: limits?.maxConcurrentStreams || DEFAULT_MAX_CONCURRENT_STREAMS,
      maxHeaderBytes: limits?.maxHeaderBytes || DEFAULT_MAX_HEADER_BYTES,
      requestHeadersTimeoutMs: durationMs(limits?.requestHeadersTimeout, 0) || DEFAULT_REQUEST_HEADERS_TIMEOUT_MS,
      requestHeadersTimeoutExplicit: limits?.requestHeadersTimeout !== undefined,
      maxRequestBodyBytes: Number(limits?.maxRequestBodyBytes ?? 0n),
      accessLog: !l.accessLog?.disabled,
      logHeaders: (l.accessLog?.logHeaders ?? []).map((h) => h.toLowerCase()),
      sensitiveHeaders: sensitive,
      tracingOff: l.tracing?.disabled ?? false,
      traceSampling: l.tracing?.sampling,
      openapi: ListenerOpenApi.build(l.routeConfig ? snapshot.routeConfigs.get(l.routeConfig) : undefined, transcoders),
      chains,
      chain,
    });
  }
  const hasOriginalDst = [...clusters.values()].some((c) => c.originalDst);
  return { version: snapshot.version, snapshot, listeners, clusters, routeTables, transcoders, hasOriginalDst, random: deps.random ?? systemRandom() };
}

const EMPTY_REGISTRY = new FilterRegistry();

/**
 * Each route's chain: the listener's entries with the route's overrides, then
 * the filters its action implies — a transcoding route's browser-origin rules
 * (`transcode.allowedOrigins`). Only routes whose chain differs from the
 * listener's are listed; a filter that does not compile rejects the version.
 */
function compileChains(
  registry: FilterRegistry,
  source: FilterConfigSource,
  entries: readonly FilterEntry[],
  routes: RouteTable | undefined,
  transcoders: ReadonlyMap<Transcode, Transcoder>,
  clusters: FilterClusterCalls | undefined,
): Map<CompiledRoute, FilterChain> {
  const out = new Map<CompiledRoute, FilterChain>();
  for (const r of routes?.routes() ?? []) {
    const implied: HttpFilter[] = [];
    const tr = r.action.kind === 'cluster' && r.action.transcode ? transcoders.get(r.action.transcode) : undefined;
    const overrides = source.overridesOf(r);
    if (tr) implied.push(transcodeCorsFilter(tr, !hasCorsFilter(entries, overrides)));
    if (implied.length === 0 && overrides === undefined) continue;
    try {
      out.set(r, registry.compile(entries, overrides, implied, { grpcMethods: tr?.methods, clusters }));
    } catch (err) {
      throw new RouteCompileError(`RouteConfiguration/${r.virtualHost}/${r.name}: filters`, (err as Error).message);
    }
  }
  return out;
}

/** Does a route's chain have a `cors` filter (listed and not disabled by the route)? Then it owns CORS. */
function hasCorsFilter(entries: readonly FilterEntry[], overrides: ReadonlyMap<string, FilterOverride> | undefined): boolean {
  return entries.some((e) => (e.type ?? e.name) === CORS_FILTER_TYPE && !(overrides?.get(e.name) && 'disabled' in overrides.get(e.name)!));
}

/**
 * Descriptors and http rules are compiled here, once per config version, never
 * per request. A descriptor that cannot be read or a rule that does not
 * compile rejects the whole config like any other compile error.
 */
function buildTranscoders(snapshot: ConfigSnapshot, sources: DescriptorSources | undefined): Map<Transcode, Transcoder> {
  const out = new Map<Transcode, Transcoder>();
  const pools = new Map<string, DescriptorPool>();
  for (const [rcName, rc] of snapshot.routeConfigs) {
    rc.virtualHosts.forEach((vh, v) =>
      vh.routes.forEach((r, i) => {
        if (r.action.case !== 'route' || !r.action.value.transcode) return;
        const t = r.action.value.transcode;
        try {
          // Reflection reads the descriptors from the route's cluster (a weighted split's first: they serve the same services).
          const cluster = r.action.value.cluster || (r.action.value.weightedClusters[0]?.cluster ?? '');
          out.set(t, Transcoder.compile(t, pools, { sources, cluster }));
        } catch (err) {
          throw new RouteCompileError(`RouteConfiguration/${rcName}: virtualHosts[${v}].routes[${i}].route.transcode`, (err as Error).message);
        }
      }),
    );
  }
  return out;
}

/** Endpoint keys referenced by a state, so pools of vanished endpoints can be closed. */
export function endpointKeys(state: ProxyState): Set<string> {
  const keys = new Set<string>();
  for (const c of state.clusters.values()) for (const e of c.endpoints) keys.add(e.key);
  return keys;
}

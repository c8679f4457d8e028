import type { V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { JsonObject, ResourceDocument } from '../../config/snapshot.js';
import type { GeneratedResource, GeneratedResources } from '../../control/server/generated-resources.js';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';
import { GENERATED_LABEL, toLoadAssignment, type EndpointSet } from '../endpoint-set.js';
import { serviceEndpoints, type KubernetesProvider } from '../kubernetes/kube-provider.js';
import { meshTlsOf, type MeshTlsOptions } from './mesh-identity.js';

export { GENERATED_LABEL };
/** The injected sidecar's outbound route configuration and pass-through cluster (injector/inbound-config.ts names them). */
export const OUTBOUND_ROUTE_CONFIG = 'outbound';
export const PASSTHROUGH_CLUSTER = 'passthrough';

const GENERATED_LABELS = { [GENERATED_LABEL]: 'kubernetes' };

export type MeshScope = { readonly kind: 'all' } | { readonly kind: 'namespaces'; readonly names: readonly string[] } | { readonly kind: 'selector'; readonly selector: string };

export interface KubeMeshOptions {
  readonly provider: KubernetesProvider;
  readonly scope: MeshScope;
  /** ALLOW_ANY (default): the route config keeps the injector's catch-all to `passthrough`. */
  readonly outboundPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** The cluster domain (default cluster.local). */
  readonly clusterDomain?: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** `--mesh-mtls`: clusters expect their endpoints' service accounts over mesh mTLS (mesh-identity.ts). */
  readonly meshTls?: MeshTlsOptions;
}

type Protocol = 'UPSTREAM_PROTOCOL_HTTP2' | 'UPSTREAM_PROTOCOL_HTTP1' | 'UPSTREAM_PROTOCOL_UNSPECIFIED';

/** Istio's protocol selection: `appProtocol` first, else the port name's prefix. */
export function protocolOf(p: V1ServicePort): { protocol: Protocol; opaque: boolean } {
  const ap = (p.appProtocol ?? '').toLowerCase();
  const name = (p.name ?? '').toLowerCase();
  const pick = (s: string): { protocol: Protocol; opaque: boolean } | undefined => {
    if (s === 'grpc' || s.startsWith('grpc-') || s === 'http2' || s.startsWith('http2-') || s === 'kubernetes.io/h2c' || s === 'grpc-web') return { protocol: 'UPSTREAM_PROTOCOL_HTTP2', opaque: false };
    if (s === 'http' || s.startsWith('http-')) return { protocol: 'UPSTREAM_PROTOCOL_HTTP1', opaque: false };
    if (s === 'tcp' || s.startsWith('tcp-') || s === 'tls' || s.startsWith('tls-') || s === 'mongo' || s === 'redis' || s === 'mysql') return { protocol: 'UPSTREAM_PROTOCOL_UNSPECIFIED', opaque: true };
    return undefined;
  };
  return pick(ap) ?? pick(name) ?? { protocol: 'UPSTREAM_PROTOCOL_UNSPECIFIED', opaque: false };
}

/** `outbound|PORT||SVC.NS.svc.cluster.local`, Istio's cluster name. */
export function meshClusterName(svc: string, ns: string, port: number, domain = 'cluster.local'): string {
  return `outbound|${port}||${svc}.${ns}.svc.${domain}`;
}

/**
 * The mesh's config generated from Kubernetes (`outrigger control --discover
 * kubernetes`): for every port of every Service in scope, an EDS Cluster
 * named by Istio's convention with its ClusterLoadAssignment (from the
 * EndpointSlices, by the Kubernetes provider's rules), and one
 * RouteConfiguration `outbound` (the injected sidecars' outbound listener
 * names it) with a virtual host per HTTP/gRPC Service port answering to
 * SVC, SVC.NS, SVC.NS.svc, SVC.NS.svc.cluster.local and the ClusterIP, each
 * with ":PORT" (port 80 also without: clients leave the default port out).
 *
 * Served by the control plane as generated resources (never stored): each
 * Service's documents are recomputed only when its objects change, and the
 * set is swapped once per burst of changes.
 */
export class KubeMesh implements GeneratedResources {
  private readonly perService = new Map<string, ServiceDocs>();
  private resources: readonly GeneratedResource[] = [];
  private readonly subscribers = new Set<() => void>();
  private dirty = new Set<string>();
  private all = true;
  private scheduled = false;
  private firstChangeMs: number | undefined;
  private selected: { names(): string[]; synced(): boolean } | undefined;
  private readonly unsubscribe: () => void;
  private versions = new Map<string, number>();
  private lastChangeMs = 0;
  /** The last route configuration and the virtual hosts it was made of (kept while they are the same objects). */
  private route: { vhosts: readonly JsonObject[]; doc: ResourceDocument } | undefined;
  /** ALLOW_ANY's catch-all virtual host and pass-through cluster (made once: the same objects in every set). */
  private readonly allowAny: { vhost: JsonObject; cluster: ResourceDocument } | undefined;

  constructor(private readonly opts: KubeMeshOptions) {
    if ((opts.outboundPolicy ?? 'ALLOW_ANY') === 'ALLOW_ANY') {
      this.allowAny = {
        vhost: { name: 'allow-any', domains: ['*'], routes: [{ name: 'passthrough', match: { prefix: '/' }, route: { cluster: PASSTHROUGH_CLUSTER } }] },
        cluster: { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name: PASSTHROUGH_CLUSTER, labels: GENERATED_LABELS }, spec: { type: 'DISCOVERY_TYPE_ORIGINAL_DST', connectTimeout: '10s' } },
      };
    }
    const p = opts.provider;
    if (opts.scope.kind === 'namespaces') for (const ns of opts.scope.names) p.informersFor(ns);
    else p.informersFor('');
    if (opts.scope.kind === 'selector') this.selected = p.namespacesMatching(opts.scope.selector, () => this.mark(undefined));
    this.unsubscribe = p.onChange((ns, svc) => this.mark(svc === undefined ? (ns === '' ? undefined : `${ns}/`) : `${ns}/${svc}`));
  }

  /** Services the generated config covers now. */
  get services(): number {
    return this.perService.size;
  }

  current(): readonly GeneratedResource[] {
    return this.resources;
  }

  /** When the informers saw the first change of the burst the current set reflects (discovery's push time starts here). */
  changedAtMs(): number {
    return this.lastChangeMs;
  }

  subscribe(fn: () => void): () => void {
    this.subscribers.add(fn);
    return () => void this.subscribers.delete(fn);
  }

  /** Marks a service ("ns/svc"), a namespace ("ns/") or everything (undefined) for recomputation. */
  private mark(key: string | undefined): void {
    if (key === undefined) this.all = true;
    else this.dirty.add(key);
    this.firstChangeMs ??= this.opts.clock.nowMs();
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.rebuild();
    });
  }

  private inScope(ns: string): boolean {
    const s = this.opts.scope;
    if (s.kind === 'all') return true;
    if (s.kind === 'namespaces') return s.names.includes(ns);
    return this.selected?.names().includes(ns) ?? false;
  }

  private synced(): boolean {
    const s = this.opts.scope;
    const p = this.opts.provider;
    if (s.kind === 'namespaces') return s.names.every((ns) => p.synced(ns));
    return p.synced('') && (this.selected?.synced() ?? true);
  }

  private rebuild(): void {
    if (!this.synced()) return; // an incomplete cache would withdraw services that exist
    const p = this.opts.provider;
    const services: V1Service[] = [];
    if (this.opts.scope.kind === 'namespaces') for (const ns of this.opts.scope.names) services.push(...(p.cache(ns)?.services ?? []));
    else services.push(...(p.cache('')?.services ?? []));
    const live = new Set<string>();
    for (const svc of services) {
      const ns = svc.metadata?.namespace ?? '';
      const name = svc.metadata?.name ?? '';
      if (!this.inScope(ns)) continue;
      const key = `${ns}/${name}`;
      live.add(key);
      const prev = this.perService.get(key);
      if (this.all || this.dirty.has(key) || this.dirty.has(`${ns}/`) || !prev) this.perService.set(key, prev ? keepUnchanged(prev, this.documentsOf(svc)) : this.documentsOf(svc));
    }
    for (const key of [...this.perService.keys()]) if (!live.has(key)) this.perService.delete(key);
    this.all = false;
    this.dirty.clear();
    const changedAtMs = this.firstChangeMs ?? this.opts.clock.nowMs();
    this.firstChangeMs = undefined;
    const next = this.assemble();
    if (sameDocs(next, this.resources)) return;
    this.resources = next;
    this.lastChangeMs = changedAtMs;
    for (const fn of this.subscribers) fn();
  }

  private documentsOf(svc: V1Service): ServiceDocs {
    const ns = svc.metadata!.namespace!;
    const name = svc.metadata!.name!;
    const domain = this.opts.clusterDomain ?? 'cluster.local';
    const c = this.opts.provider.cache(this.opts.scope.kind === 'namespaces' ? ns : '')!;
    const clusters: ResourceDocument[] = [];
    const assignments: ResourceDocument[] = [];
    const vhosts: JsonObject[] = [];
    const labels = { [GENERATED_LABEL]: 'kubernetes' };
    const ips = [...new Set([svc.spec?.clusterIP, ...(svc.spec?.clusterIPs ?? [])].filter((ip): ip is string => !!ip && ip !== 'None'))];
    for (const port of svc.spec?.ports ?? []) {
      if ((port.protocol ?? 'TCP') !== 'TCP') continue;
      const cname = meshClusterName(name, ns, port.port, domain);
      const { protocol, opaque } = protocolOf(port);
      clusters.push({
        apiVersion: 'outrigger.io/v1',
        kind: 'Cluster',
        metadata: { name: cname, labels },
        spec: { type: 'DISCOVERY_TYPE_EDS', ...(protocol !== 'UPSTREAM_PROTOCOL_UNSPECIFIED' ? { protocol } : {}), ...meshTlsOf(this.opts.meshTls, ns, name, c.slices, c.pod) },
      });
      const eps = serviceEndpoints({ namespace: ns, service: name, port: port.port }, c.services, c.slices, c.pod) ?? [];
      const key = `${cname}`;
      const set: EndpointSet = { source: `kubernetes:${ns}/${name}:${port.port}`, version: this.bump(key), endpoints: eps, changedAtMs: 0 };
      assignments.push(toLoadAssignment(cname, set, labels));
      if (opaque) continue;
      const hosts = [name, `${name}.${ns}`, `${name}.${ns}.svc`, `${name}.${ns}.svc.${domain}`, ...ips.map((ip) => (ip.includes(':') ? `[${ip}]` : ip))];
      const domains = hosts.map((h) => `${h}:${port.port}`);
      if (port.port === 80) domains.push(...hosts);
      vhosts.push({ name: `${name}.${ns}.svc.${domain}:${port.port}`, domains, routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster: cname } }] });
    }
    return { clusters, assignments, vhosts };
  }

  private bump(key: string): number {
    const v = (this.versions.get(key) ?? 0) + 1;
    this.versions.set(key, v);
    return v;
  }

  private assemble(): GeneratedResource[] {
    const keys = [...this.perService.keys()].sort();
    const clusters: ResourceDocument[] = [];
    const assignments: ResourceDocument[] = [];
    const vhosts: JsonObject[] = [];
    for (const k of keys) {
      const d = this.perService.get(k)!;
      clusters.push(...d.clusters);
      assignments.push(...d.assignments);
      vhosts.push(...d.vhosts);
    }
    if (this.allowAny) {
      vhosts.push(this.allowAny.vhost);
      clusters.push(this.allowAny.cluster);
    }
    if (this.route === undefined || !sameItems(this.route.vhosts, vhosts)) {
      this.route = { vhosts, doc: { apiVersion: 'outrigger.io/v1', kind: 'RouteConfiguration', metadata: { name: OUTBOUND_ROUTE_CONFIG, labels: GENERATED_LABELS }, spec: { virtualHosts: vhosts } } };
    }
    return [...clusters, ...assignments, this.route.doc];
  }

  close(): void {
    this.unsubscribe();
  }
}

type ServiceDocs = { clusters: ResourceDocument[]; assignments: ResourceDocument[]; vhosts: JsonObject[] };

/**
 * A recomputed Service's documents, with the previous objects kept where the
 * content is the same: documents are immutable and the control plane keys
 * its decoded and wire forms by object (document-forms.ts), so an
 * EndpointSlice change leaves the Cluster, the virtual hosts (and with them
 * the route configuration) the very objects they were.
 */
function keepUnchanged(prev: ServiceDocs, next: ServiceDocs): ServiceDocs {
  const keep = <T>(a: T[], b: T[]): T[] => b.map((x, i) => (i < a.length && JSON.stringify(a[i]) === JSON.stringify(x) ? a[i]! : x));
  return { clusters: keep(prev.clusters, next.clusters), assignments: keep(prev.assignments, next.assignments), vhosts: keep(prev.vhosts, next.vhosts) };
}

/** The same objects in the same order. */
function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Equal sets: with unchanged documents kept as the same objects (keepUnchanged), the same objects. */
function sameDocs(a: readonly ResourceDocument[], b: readonly ResourceDocument[]): boolean {
  return sameItems(a, b);
}

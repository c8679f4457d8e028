import { CoreV1Api, DiscoveryV1Api, makeInformer, type KubeConfig, type KubernetesObject, type V1EndpointSlice, type V1Namespace, type V1Pod, type V1Service } from '@kubernetes/client-node';
import type { Clock, Timer } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';
import { EndpointSetTracker, type DiscoveredEndpoint, type EndpointSet } from '../endpoint-set.js';
import { Backoff, ProviderHealth, type DiscoveryProvider, type ProviderEvents, type ProviderStatus, type ServiceWatch } from '../provider.js';
import { defaultNamespace } from './kube-connection.js';

export interface KubernetesTarget {
  /** Empty: the kubeconfig context's namespace. */
  readonly namespace: string;
  readonly service: string;
  /** The Service port's number or name; undefined: the Service's only port. */
  readonly port: number | string | undefined;
}

export interface KubernetesProviderOptions {
  readonly kubeConfig: KubeConfig;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events?: ProviderEvents;
  readonly random?: () => number;
  /** Reconnect backoff cap (default 5 s, as the issue's contract says). */
  readonly maxBackoffMs?: number;
}

/** The label EndpointSlices carry naming their Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const MAX_BACKOFF_MS = 5000;

/** Every object kind one namespace is watched for. */
interface Watched {
  readonly slices: Informed<V1EndpointSlice>;
  readonly services: Informed<V1Service>;
  readonly pods: Informed<V1Pod>;
}

type Informer<T extends KubernetesObject> = ReturnType<typeof makeInformer<T>>;

/**
 * Kubernetes Services' endpoints from EndpointSlices (discovery.k8s.io/v1),
 * through @kubernetes/client-node informers (list, then watch from its
 * resourceVersion; a 410 Gone relists). One set of informers (EndpointSlices,
 * Services, Pods) per namespace watched, shared by every watch in it, or one
 * cluster-wide set (`allNamespaces`, the control plane's).
 *
 * Endpoint rules: ready → HEALTHY; serving but terminating → DRAINING while
 * some endpoint is ready, HEALTHY when none is (Kubernetes' own proxies fall
 * back to terminating endpoints the same way); not ready → left out. The
 * endpoint's zone → locality.zone; its Pod's labels → metadata.
 *
 * A watch that fails (API server down, 5xx, a dropped connection) is
 * restarted with backoff capped at 5 s; meanwhile the informers' caches, and
 * so the last sets, stand.
 */
export class KubernetesProvider implements DiscoveryProvider<KubernetesTarget> {
  readonly kind = 'kubernetes' as const;
  private readonly namespaces = new Map<string, Watched>();
  private readonly watches = new Set<KubeWatch>();
  private readonly health: ProviderHealth;
  private readonly listeners = new Set<(namespace: string, service: string | undefined) => void>();
  private readonly extra: Informed<KubernetesObject>[] = [];
  readonly defaultNamespace: string;
  private closed = false;

  constructor(private readonly opts: KubernetesProviderOptions) {
    const cluster = opts.kubeConfig.getCurrentCluster();
    this.health = new ProviderHealth('kubernetes', cluster?.server ?? 'kubernetes', opts.logger, () => opts.clock.nowMs(), opts.events);
    this.defaultNamespace = defaultNamespace(opts.kubeConfig);
  }

  watch(target: KubernetesTarget, emit: (set: EndpointSet) => void): ServiceWatch {
    const ns = target.namespace || this.defaultNamespace;
    const w = new KubeWatch({ ...target, namespace: ns }, emit, this, () => this.watches.delete(w));
    this.watches.add(w);
    this.informersFor(ns);
    w.recompute();
    return w;
  }

  /**
   * Starts the informers of one namespace ('' = every namespace, one set of
   * cluster-wide watches) if not yet running; returns once their first list
   * was answered (or failed).
   */
  informersFor(namespace: string): Watched {
    const all = this.namespaces.get('');
    if (all) return all;
    let w = this.namespaces.get(namespace);
    if (w) return w;
    const kc = this.opts.kubeConfig;
    const core = kc.makeApiClient(CoreV1Api);
    const disc = kc.makeApiClient(DiscoveryV1Api);
    const nsPath = namespace ? `/namespaces/${namespace}` : '';
    w = {
      slices: this.inform<V1EndpointSlice>(`/apis/discovery.k8s.io/v1${nsPath}/endpointslices`, () =>
        namespace ? disc.listNamespacedEndpointSlice({ namespace }) : disc.listEndpointSliceForAllNamespaces(),
      ),
      services: this.inform<V1Service>(`/api/v1${nsPath}/services`, () => (namespace ? core.listNamespacedService({ namespace }) : core.listServiceForAllNamespaces())),
      pods: this.inform<V1Pod>(`/api/v1${nsPath}/pods`, () => (namespace ? core.listNamespacedPod({ namespace }) : core.listPodForAllNamespaces())),
    };
    this.namespaces.set(namespace, w);
    return w;
  }

  /**
   * The namespaces matching a label selector ("k=v,…"), kept current by an
   * informer like the others; `onChange` runs after each change (and after
   * the first list).
   */
  namespacesMatching(labelSelector: string, onChange: () => void): { names(): string[]; synced(): boolean } {
    const core = this.opts.kubeConfig.makeApiClient(CoreV1Api);
    const entry = this.inform<V1Namespace>('/api/v1/namespaces', () => core.listNamespace({ labelSelector }), labelSelector, onChange);
    this.extra.push(entry as unknown as Informed<KubernetesObject>);
    return { names: () => entry.informer.list().map((n) => n.metadata?.name ?? ''), synced: () => entry.synced };
  }

  /** Calls `fn(namespace, service)` after every change (service undefined: a Pod changed, any service of the namespace may be affected). */
  onChange(fn: (namespace: string, service: string | undefined) => void): () => void {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }

  /** The cached objects of a namespace ('' = all, when watched cluster-wide). */
  cache(namespace: string): { slices: readonly V1EndpointSlice[]; services: readonly V1Service[]; pod(ns: string, name: string): V1Pod | undefined } | undefined {
    const w = this.namespaces.get('') ?? this.namespaces.get(namespace);
    if (!w) return undefined;
    return {
      slices: w.slices.informer.list(namespace || undefined),
      services: w.services.informer.list(namespace || undefined),
      pod: (ns, name) => w.pods.informer.get(name, ns),
    };
  }

  /** Whether the informers serving `namespace` have each listed once (before that a set would be incomplete). */
  synced(namespace: string): boolean {
    const w = this.namespaces.get('') ?? this.namespaces.get(namespace);
    return w !== undefined && w.slices.synced && w.services.synced && w.pods.synced;
  }

  private inform<T extends KubernetesObject>(
    path: string,
    list: () => Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>,
    labelSelector?: string,
    onChange?: () => void,
  ): Informed<T> {
    const backoff = new Backoff(200, this.opts.maxBackoffMs ?? MAX_BACKOFF_MS, this.opts.random);
    const entry: Informed<T> = { informer: undefined as unknown as Informer<T>, synced: false, listed: false, timer: undefined };
    const informer = makeInformer<T>(
      this.opts.kubeConfig,
      path,
      async () => {
        const l = await list();
        entry.listed = true;
        return l as never;
      },
      labelSelector,
    );
    entry.informer = informer;
    const changed = (event: 'add' | 'update' | 'delete') => (obj: T) => {
      this.health.ok(event);
      backoff.reset();
      if (onChange) return onChange();
      const ns = obj.metadata?.namespace ?? '';
      const svc = path.endsWith('/endpointslices')
        ? obj.metadata?.labels?.[SERVICE_NAME_LABEL]
        : path.endsWith('/services')
          ? obj.metadata?.name
          : undefined;
      this.changed(ns, svc);
    };
    informer.on('add', changed('add'));
    informer.on('update', changed('update'));
    informer.on('delete', changed('delete'));
    informer.on('error', (err: unknown) => {
      if (this.closed) return;
      this.health.fail(describe(err, path));
      entry.timer?.cancel();
      entry.timer = this.opts.clock.setTimer(backoff.next(), () => {
        entry.timer = undefined;
        if (!this.closed) this.startInformer(entry, onChange);
      });
    });
    this.startInformer(entry, onChange);
    return entry;
  }

  private startInformer<T extends KubernetesObject>(entry: Informed<T>, onChange?: () => void): void {
    entry.informer.start().then(
      () => {
        // start() also resolves when the list failed (the error callback ran): only a list answered syncs.
        if (this.closed || !entry.listed) return;
        if (!entry.synced) {
          entry.synced = true;
          this.health.ok('sync');
          if (onChange) onChange();
          else this.changed('', undefined, true);
        }
      },
      (err: unknown) => this.health.fail(err),
    );
  }

  private changed(namespace: string, service: string | undefined, everything = false): void {
    for (const w of this.watches) if (everything || (w.t.namespace === namespace && (service === undefined || w.t.service === service))) w.recompute();
    for (const fn of this.listeners) fn(namespace, everything ? undefined : service);
  }

  status(): ProviderStatus {
    const h = this.health;
    return { kind: 'kubernetes', connected: h.connected, lastEventMs: h.lastEventMs, services: this.watches.size, errors: h.errors, lastError: h.lastError };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of [...this.watches]) w.close();
    for (const i of this.extra) {
      i.timer?.cancel();
      await i.informer.stop();
    }
    for (const w of this.namespaces.values()) {
      for (const i of [w.slices, w.services, w.pods]) {
        i.timer?.cancel();
        await i.informer.stop();
      }
    }
    this.namespaces.clear();
  }
}

interface Informed<T extends KubernetesObject> {
  informer: Informer<T>;
  synced: boolean;
  listed: boolean;
  timer: Timer | undefined;
}

function describe(err: unknown, path: string): Error {
  const e = err as { statusCode?: number; code?: number | string; message?: string };
  const status = e?.statusCode ?? e?.code;
  return new Error(`${path}: ${status !== undefined ? `${status} ` : ''}${e?.message ?? String(err)}`);
}

class KubeWatch implements ServiceWatch {
  private readonly tracker: EndpointSetTracker;
  private open = true;

  constructor(
    readonly t: KubernetesTarget,
    emit: (set: EndpointSet) => void,
    private readonly provider: KubernetesProvider,
    private readonly onClose: () => void,
  ) {
    const port = t.port === undefined ? '' : `:${t.port}`;
    this.tracker = new EndpointSetTracker(`kubernetes:${t.namespace}/${t.service}${port}`, emit, Date.now);
  }

  recompute(): void {
    if (!this.open || !this.provider.synced(this.t.namespace)) return;
    const c = this.provider.cache(this.t.namespace);
    if (!c) return;
    const endpoints = serviceEndpoints(this.t, c.services, c.slices, c.pod);
    if (endpoints) this.tracker.offer(endpoints);
  }

  close(): void {
    if (this.open) this.onClose();
    this.open = false;
  }
}

/**
 * The endpoints of one Service port from the namespace's objects, or
 * undefined when they cannot be known yet (a port given by number whose
 * Service is not in the cache). Pure: the control plane uses it too.
 */
export function serviceEndpoints(
  t: KubernetesTarget,
  services: readonly V1Service[],
  slices: readonly V1EndpointSlice[],
  pod: (ns: string, name: string) => V1Pod | undefined,
): DiscoveredEndpoint[] | undefined {
  const svc = services.find((s) => s.metadata?.name === t.service && s.metadata?.namespace === t.namespace);
  const mine = slices.filter((s) => s.metadata?.namespace === t.namespace && s.metadata?.labels?.[SERVICE_NAME_LABEL] === t.service);
  let portName: string | undefined;
  if (typeof t.port === 'string') portName = t.port;
  else if (typeof t.port === 'number') {
    if (!svc) return mine.length === 0 ? [] : undefined;
    const sp = svc.spec?.ports?.find((p) => p.port === t.port);
    if (!sp) return [];
    portName = sp.name ?? '';
  } else if (svc?.spec?.ports?.length === 1) portName = svc.spec.ports[0]!.name ?? '';
  const ready: DiscoveredEndpoint[] = [];
  const terminating: DiscoveredEndpoint[] = [];
  for (const s of mine) {
    if (s.addressType === 'FQDN') continue;
    const sp = portName === undefined ? (s.ports?.length === 1 ? s.ports[0] : undefined) : s.ports?.find((p) => (p.name ?? '') === portName);
    if (!sp?.port) continue;
    for (const e of s.endpoints ?? []) {
      const address = e.addresses?.[0];
      if (!address) continue;
      const cond = e.conditions ?? {};
      // nil ready means unknown, which consumers treat as ready; nil serving follows ready.
      const isReady = cond.ready !== false;
      const isServing = cond.serving ?? isReady;
      const ref = e.targetRef?.kind === 'Pod' && e.targetRef.name ? pod(e.targetRef.namespace ?? t.namespace, e.targetRef.name) : undefined;
      const ep: Omit<DiscoveredEndpoint, 'healthStatus'> = {
        address,
        port: sp.port,
        weight: 1,
        ...(e.zone ? { locality: { zone: e.zone } } : {}),
        metadata: { ...(ref?.metadata?.labels ?? {}) },
      };
      if (isReady && cond.terminating !== true) ready.push({ ...ep, healthStatus: 'HEALTHY' });
      else if (isServing && cond.terminating === true) terminating.push({ ...ep, healthStatus: 'DRAINING' });
    }
  }
  if (ready.length === 0) return terminating.map((e) => ({ ...e, healthStatus: 'HEALTHY' }));
  return [...ready, ...terminating];
}

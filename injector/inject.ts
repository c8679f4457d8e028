import { createPatch, type Operation } from 'rfc6902';
import { rewriteAppProbes, type AppProbe } from './app-probes.js';
import { isCidr } from './cidr.js';
import { LOG_LEVELS, LOG_LEVELS_TEXT, isQuantity, quantityValue, supportsNativeSidecars, type MeshConfig } from './mesh-config.js';
import {
  ANNOTATIONS,
  INIT_CONTAINER,
  PODINFO_VOLUME,
  PORTS,
  PROXY_CONTAINER,
  STATE_VOLUME,
  isReservedPort,
  type Pod,
} from './pod-types.js';
import { initContainer, proxyContainer, volumes, type InjectionValues } from './templates.js';

/** Why a pod was left alone; bounded, used as a metric label. */
export type SkipReason = 'opted_out' | 'host_network' | 'already_injected' | 'ignored_namespace';

export interface InjectOptions {
  /** The request's namespace, used when the pod object has none. */
  namespace?: string;
}

export interface InjectResult {
  /** RFC 6902 operations turning the given pod into the injected one; empty when skipped. */
  patch: Operation[];
  skipReason?: SkipReason;
  /** Ignored annotation values and the like, returned as admission warnings. */
  warnings: string[];
  /** The pod after injection (the original when skipped). */
  pod: Pod;
}

/** Recorded in the outrigger.io/status annotation: what injection added. */
export interface InjectionStatus {
  initContainers: string[];
  containers: string[];
  volumes: string[];
  native: boolean;
}

/**
 * The injection pipeline, pure: no I/O, no clock, same input → same patch.
 * Shared by the webhook and `outrigger inject`. The pod is never mutated.
 *
 * Steps: policy (skip?) → values (mesh config, then annotations) → render the
 * injected pod on a copy → JSON diff against the original.
 */
export function inject(pod: Pod, mesh: MeshConfig, k8sVersion: string | undefined, opts: InjectOptions = {}): InjectResult {
  const skipReason = policy(pod, mesh, opts);
  if (skipReason) return { patch: [], skipReason, warnings: [], pod };
  if (!pod.spec || !Array.isArray(pod.spec.containers) || pod.spec.containers.length === 0) {
    throw new Error('pod has no spec.containers');
  }
  // Like Istio: managedFields are neither diffed nor patched (large, irrelevant).
  // A pod (template) without metadata stays without it in the base, or the
  // patch would address /metadata/… on an object that has no /metadata.
  let base: Pod = pod;
  if (pod.metadata) {
    const { managedFields: _mf, ...meta } = pod.metadata;
    base = { ...pod, metadata: meta };
  }
  const out = structuredClone(base) as Pod & { spec: NonNullable<Pod['spec']> };
  const warnings: string[] = [];
  const annotations = out.metadata?.annotations ?? {};

  const appContainers = out.spec.containers;
  const rewrite = flag(annotations, ANNOTATIONS.rewriteAppProbes, mesh.rewriteAppProbes, warnings);
  const appProbes: Record<string, AppProbe> = rewrite ? rewriteAppProbes(appContainers) : {};
  const values = injectionValues(out, mesh, k8sVersion, warnings, appProbes);

  const status: InjectionStatus = {
    initContainers: values.native ? [INIT_CONTAINER, PROXY_CONTAINER] : [INIT_CONTAINER],
    containers: values.native ? [] : [PROXY_CONTAINER],
    volumes: volumes(values).map((v) => v.name),
    native: values.native,
  };
  const newAnnotations: Record<string, string> = { ...annotations, [ANNOTATIONS.status]: JSON.stringify(status) };
  if (!newAnnotations[ANNOTATIONS.defaultContainer]) newAnnotations[ANNOTATIONS.defaultContainer] = appContainers[0]!.name;
  out.metadata = { ...out.metadata, annotations: newAnnotations };

  // The patch is built in two parts so it reads as what injection does: first
  // in-place edits (annotations, rewritten probes) diffed with every array at
  // its original length, then explicit insertions of our containers and
  // volumes. A whole-pod array diff would instead morph the first app
  // container into the proxy field by field.
  const patch = createPatch(base, out);
  const init = initContainer(values);
  const proxy = proxyContainer(values);
  const newInits = values.native ? [init, proxy] : [init];
  // A list that is absent or null (YAML `initContainers:` with nothing after it) is added whole.
  if (out.spec.initContainers == null) patch.push({ op: 'add', path: '/spec/initContainers', value: newInits });
  else newInits.forEach((c, i) => patch.push({ op: 'add', path: `/spec/initContainers/${i}`, value: c }));
  if (!values.native) patch.push({ op: 'add', path: '/spec/containers/0', value: proxy });
  if (out.spec.volumes == null) patch.push({ op: 'add', path: '/spec/volumes', value: volumes(values) });
  else for (const v of volumes(values)) patch.push({ op: 'add', path: '/spec/volumes/-', value: v });

  out.spec.initContainers = [...newInits, ...(out.spec.initContainers ?? [])];
  if (!values.native) out.spec.containers = [proxy, ...appContainers];
  out.spec.volumes = [...(out.spec.volumes ?? []), ...volumes(values)];
  return { patch, warnings, pod: out };
}

function policy(pod: Pod, mesh: MeshConfig, opts: InjectOptions): SkipReason | undefined {
  const meta = pod.metadata ?? {};
  if (meta.annotations?.[ANNOTATIONS.status] !== undefined) return 'already_injected';
  // A leftover proxy container (status annotation stripped) also means injected.
  const names = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].map((c) => c?.name);
  if (names.includes(PROXY_CONTAINER)) return 'already_injected';
  if (meta.labels?.[ANNOTATIONS.inject] === 'false' || meta.annotations?.[ANNOTATIONS.inject] === 'false') return 'opted_out';
  if (pod.spec?.hostNetwork === true) return 'host_network';
  const ns = meta.namespace || opts.namespace || '';
  if (mesh.ignoredNamespaces.includes(ns)) return 'ignored_namespace';
  return undefined;
}

function injectionValues(
  pod: Pod & { spec: NonNullable<Pod['spec']> },
  mesh: MeshConfig,
  k8sVersion: string | undefined,
  warnings: string[],
  appProbes: Record<string, AppProbe>,
): InjectionValues {
  const a = pod.metadata?.annotations ?? {};
  const labels = pod.metadata?.labels ?? {};
  const excludeInbound = new Set([...mesh.excludeInboundPorts, ...ports(a, ANNOTATIONS.excludeInboundPorts, warnings)]);
  const include = includeInboundPorts(a, mesh, warnings);
  const appPorts = new Set<number>();
  for (const c of pod.spec.containers) {
    for (const p of c.ports ?? []) {
      if ((p.protocol ?? 'TCP') !== 'TCP' || !Number.isInteger(p.containerPort)) continue;
      if (excludeInbound.has(p.containerPort)) continue;
      if (include !== '*' && !include.includes(p.containerPort)) continue;
      if (isReservedPort(p.containerPort)) {
        warnings.push(`port ${p.containerPort} of container ${c.name} is reserved by the sidecar and not captured`);
        continue;
      }
      appPorts.add(p.containerPort);
    }
  }
  const sorted = [...appPorts].sort((x, y) => x - y);
  const max = PORTS.inboundMax - PORTS.inboundBase + 1;
  if (sorted.length > max) {
    warnings.push(`only the first ${max} declared ports get an inbound listener of their own; the others are captured by the catch-all (${PORTS.inbound})`);
  }
  const inboundPorts = sorted.slice(0, max).map((p, i): [number, number] => [p, PORTS.inboundBase + i]);
  // An explicit list: exactly those ports are captured (declared ones through
  // their listener, the rest through the catch-all), minus excluded and reserved ones.
  let includeInbound: '*' | number[] = '*';
  if (include !== '*') {
    includeInbound = [];
    for (const p of [...new Set(include)].sort((x, y) => x - y)) {
      if (excludeInbound.has(p)) continue;
      if (isReservedPort(p)) warnings.push(`${ANNOTATIONS.includeInboundPorts}: port ${p} is reserved by the sidecar and not captured`);
      else includeInbound.push(p);
    }
  }

  const nativeMode = a[ANNOTATIONS.nativeSidecar];
  let native: boolean;
  if (nativeMode === 'true' || nativeMode === 'false') native = nativeMode === 'true';
  else {
    if (nativeMode !== undefined) warnings.push(`${ANNOTATIONS.nativeSidecar}: expected "true" or "false"`);
    native = mesh.nativeSidecars === 'enabled' || (mesh.nativeSidecars === 'auto' && supportsNativeSidecars(k8sVersion || mesh.kubernetesVersion));
  }
  const str = (key: string, dflt: string): string => a[key] || dflt;
  // Values the proxy or the API server would refuse are ignored, so a typo in an
  // annotation never crash-loops the proxy or gets the pod rejected.
  const checked = (key: string, dflt: string, ok: (v: string) => boolean, expected: string): string => {
    const v = a[key];
    if (!v) return dflt;
    if (ok(v)) return v;
    warnings.push(`${key}: ignored ${JSON.stringify(v)} (${expected})`);
    return dflt;
  };
  const logLevel = checked(ANNOTATIONS.logLevel, mesh.logLevel, (v) => (LOG_LEVELS as readonly string[]).includes(v), `expected ${LOG_LEVELS_TEXT}`);
  const quantity = (key: string, dflt: string | undefined): string => checked(key, dflt ?? '', isQuantity, 'not a Kubernetes quantity');
  const resources = {
    requests: { cpu: quantity(ANNOTATIONS.proxyCpu, mesh.resources.requests.cpu), memory: quantity(ANNOTATIONS.proxyMemory, mesh.resources.requests.memory) },
    limits: { cpu: quantity(ANNOTATIONS.proxyCpuLimit, mesh.resources.limits.cpu), memory: quantity(ANNOTATIONS.proxyMemoryLimit, mesh.resources.limits.memory) },
  };
  // The API server rejects requests above limits. The annotated side wins: a
  // limit annotated alone lowers the mesh config's request; otherwise the limit
  // is raised to the request.
  const annotatedLimit = { cpu: ANNOTATIONS.proxyCpuLimit, memory: ANNOTATIONS.proxyMemoryLimit };
  const annotatedRequest = { cpu: ANNOTATIONS.proxyCpu, memory: ANNOTATIONS.proxyMemory };
  for (const r of ['cpu', 'memory'] as const) {
    const request = resources.requests[r];
    const limit = resources.limits[r];
    if (!request || !limit || quantityValue(request) <= quantityValue(limit)) continue;
    if (resources.limits[r] === a[annotatedLimit[r]] && resources.requests[r] !== a[annotatedRequest[r]]) {
      warnings.push(`proxy ${r} request ${request} is above the annotated limit ${limit}; the request is lowered to ${limit}`);
      resources.requests[r] = limit;
    } else {
      warnings.push(`proxy ${r} request ${request} is above its limit ${limit}; the limit is raised to ${request}`);
      resources.limits[r] = request;
    }
  }
  return {
    image: str(ANNOTATIONS.proxyImage, mesh.proxyImage),
    imagePullPolicy: mesh.imagePullPolicy,
    controlPlaneAddress: str(ANNOTATIONS.controlPlaneAddress, mesh.controlPlaneAddress),
    nodeCluster: labels['app.kubernetes.io/name'] || labels.app || pod.spec.serviceAccountName || 'default',
    logLevel,
    resources,
    native,
    holdApplication: flag(a, ANNOTATIONS.holdApplication, mesh.holdApplicationUntilProxyStarts, warnings),
    proxyUid: mesh.proxyUid,
    outboundPolicy: mesh.outboundTrafficPolicy,
    inboundPorts,
    includeInboundPorts: includeInbound,
    excludeInboundPorts: [...excludeInbound],
    excludeOutboundPorts: [...new Set([...mesh.excludeOutboundPorts, ...ports(a, ANNOTATIONS.excludeOutboundPorts, warnings)])],
    excludeOutboundIpRanges: [...new Set([...mesh.excludeOutboundIpRanges, ...cidrs(a, ANNOTATIONS.excludeOutboundIpRanges, warnings)])],
    includeOutboundIpRanges: a[ANNOTATIONS.includeOutboundIpRanges] !== undefined
      ? cidrs(a, ANNOTATIONS.includeOutboundIpRanges, warnings, true)
      : mesh.includeOutboundIpRanges,
    appProbes,
    workloadIdentity: mesh.workloadIdentity,
    concurrency: mesh.proxyConcurrency,
    mtlsMode: mesh.mtlsMode,
    controlPlaneCa: mesh.controlPlaneCaBundle,
  };
}

function flag(a: Record<string, string>, key: string, dflt: boolean, warnings: string[]): boolean {
  const v = a[key];
  if (v === undefined) return dflt;
  if (v === 'true' || v === 'false') return v === 'true';
  warnings.push(`${key}: expected "true" or "false", got ${JSON.stringify(v)}; using ${dflt}`);
  return dflt;
}

/**
 * `outrigger.io/include-inbound-ports` (Istio's includeInboundPorts): `*` or a
 * port list, `""` meaning none; absent, the mesh config's. Bad entries are
 * ignored with a warning; a value with nothing usable in it falls back to the
 * mesh config (a typo must not turn capture off).
 */
function includeInboundPorts(a: Record<string, string>, mesh: MeshConfig, warnings: string[]): '*' | number[] {
  const meshValue = (): '*' | number[] => (mesh.includeInboundPorts.includes('*') ? '*' : (mesh.includeInboundPorts as number[]));
  const v = a[ANNOTATIONS.includeInboundPorts];
  if (v === undefined) return meshValue();
  const entries = list(v);
  if (entries.includes('*')) {
    if (entries.length > 1) warnings.push(`${ANNOTATIONS.includeInboundPorts}: "*" captures every port; the other entries are ignored`);
    return '*';
  }
  const out = ports(a, ANNOTATIONS.includeInboundPorts, warnings);
  if (entries.length > 0 && out.length === 0) {
    warnings.push(`${ANNOTATIONS.includeInboundPorts}: no port in ${JSON.stringify(v)}; using the mesh config's`);
    return meshValue();
  }
  return out;
}

function list(v: string | undefined): string[] {
  return (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

function ports(a: Record<string, string>, key: string, warnings: string[]): number[] {
  const out: number[] = [];
  for (const s of list(a[key])) {
    const n = Number(s);
    if (/^\d+$/.test(s) && n > 0 && n < 65536) out.push(n);
    else warnings.push(`${key}: ignored ${JSON.stringify(s)} (not a port)`);
  }
  return out;
}

function cidrs(a: Record<string, string>, key: string, warnings: string[], allowStar = false): string[] {
  const out: string[] = [];
  for (const s of list(a[key])) {
    if ((allowStar && s === '*') || isCidr(s)) out.push(s);
    else warnings.push(`${key}: ignored ${JSON.stringify(s)} (not a CIDR)`);
  }
  return out;
}

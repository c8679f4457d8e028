import { parse as parseYaml } from 'yaml';

/** When the proxy goes into initContainers with restartPolicy: Always (KEP-753). */
export type NativeSidecarMode = 'auto' | 'enabled' | 'disabled';
/** What the sidecar does with outbound traffic to destinations the mesh does not know. */
export type OutboundTrafficPolicy = 'ALLOW_ANY' | 'REGISTRY_ONLY';

export interface ResourceList {
  cpu?: string;
  memory?: string;
}

/**
 * Mesh-wide injection settings. Every field has a working default
 * (`defaultMeshConfig`), so the injector runs with no file; a file given with
 * `--mesh-config` overrides field by field.
 */
export interface MeshConfig {
  /** The one `outrigger` image: proxy, init (redirect) and wait-ready. */
  proxyImage: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** host:port of the control API the sidecar subscribes to. */
  controlPlaneAddress: string;
  resources: { requests: ResourceList; limits: ResourceList };
  nativeSidecars: NativeSidecarMode;
  /** "1.30" or "v1.30.2"; when empty the webhook asks the API server at startup. */
  kubernetesVersion: string;
  /** Non-native mode: a postStart hook holds app containers until the proxy is ready. */
  holdApplicationUntilProxyStarts: boolean;
  rewriteAppProbes: boolean;
  logLevel: string;
  /**
   * Proxy workers (`OUTRIGGER_CONCURRENCY`, the sidecar's `--concurrency`): a container's CPU quota is
   * invisible to the proxy, which would otherwise start one worker per node CPU. 2 as Istio's default.
   */
  proxyConcurrency: number;
  outboundTrafficPolicy: OutboundTrafficPolicy;
  /** Traffic from this UID is never captured (the proxy runs as it). */
  proxyUid: number;
  /**
   * Inbound ports captured: `["*"]` every port (declared ones through their own
   * listener, the rest through the catch-all on 15006), or only these ports
   * (`[]`: none). Annotation `outrigger.io/include-inbound-ports` overrides it.
   */
  includeInboundPorts: ('*' | number)[];
  excludeInboundPorts: number[];
  excludeOutboundPorts: number[];
  excludeOutboundIpRanges: string[];
  /** `*` captures every destination. */
  includeOutboundIpRanges: string[];
  /** Namespaces the webhook never injects even when called for them. */
  ignoredNamespaces: string[];
  /**
   * Workload identity (docs/security.md): mount a projected service-account
   * token (audience `outrigger`) and have the sidecar get its certificate with it.
   */
  workloadIdentity: boolean;
  /** The inbound listeners' peerAuthentication (with workloadIdentity): PERMISSIVE, STRICT or DISABLE. */
  mtlsMode: MtlsMode;
  /**
   * PEM of the CA that signed the control plane's TLS certificate. Non-empty:
   * the control plane serves TLS, and injected sidecars verify it with this
   * bundle (`--control-plane-ca`); empty: the control connection is h2c.
   */
  controlPlaneCaBundle: string;
}

export type MtlsMode = 'PERMISSIVE' | 'STRICT' | 'DISABLE';

export function defaultMeshConfig(): MeshConfig {
  return {
    proxyImage: 'ghcr.io/outrigger/outrigger:0.1.0',
    imagePullPolicy: 'IfNotPresent',
    controlPlaneAddress: 'outrigger-control.outrigger-system.svc:15010',
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2', memory: '1Gi' } },
    nativeSidecars: 'auto',
    kubernetesVersion: '',
    holdApplicationUntilProxyStarts: true,
    rewriteAppProbes: true,
    logLevel: 'info',
    proxyConcurrency: 2,
    outboundTrafficPolicy: 'ALLOW_ANY',
    proxyUid: 1337,
    includeInboundPorts: ['*'],
    excludeInboundPorts: [],
    excludeOutboundPorts: [],
    excludeOutboundIpRanges: [],
    includeOutboundIpRanges: ['*'],
    ignoredNamespaces: ['kube-system', 'kube-public', 'kube-node-lease'],
    workloadIdentity: true,
    mtlsMode: 'PERMISSIVE',
    controlPlaneCaBundle: '',
  };
}

/**
 * Parses a mesh config file (YAML or JSON) over the defaults. Unknown keys and
 * wrong types are errors, reported all at once with their paths.
 */
export function parseMeshConfig(text: string): MeshConfig {
  const raw: unknown = text.trim() === '' ? {} : parseYaml(text);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('mesh config: expected a mapping');
  const out = defaultMeshConfig();
  const errors: string[] = [];
  const target = out as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (!(key in out)) {
      errors.push(`${key}: unknown field`);
      continue;
    }
    const err = checkField(key as keyof MeshConfig, value);
    if (err) errors.push(`${key}: ${err}`);
    else target[key] = key === 'resources' ? mergeResources(out.resources, value as MeshConfig['resources']) : value;
  }
  if (errors.length) throw new Error(`mesh config:\n  ${errors.join('\n  ')}`);
  return out;
}

function mergeResources(base: MeshConfig['resources'], v: Partial<MeshConfig['resources']>): MeshConfig['resources'] {
  return { requests: { ...base.requests, ...(v.requests ?? {}) }, limits: { ...base.limits, ...(v.limits ?? {}) } };
}

const isStrings = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isPorts = (v: unknown): boolean => Array.isArray(v) && v.every((x) => Number.isInteger(x) && x > 0 && x < 65536);

function checkField(key: keyof MeshConfig, v: unknown): string | undefined {
  switch (key) {
    case 'proxyImage':
    case 'controlPlaneAddress':
    case 'kubernetesVersion':
      return typeof v === 'string' ? undefined : 'expected a string';
    case 'logLevel':
      return (LOG_LEVELS as readonly unknown[]).includes(v) ? undefined : `expected ${LOG_LEVELS_TEXT}`;
    case 'imagePullPolicy':
      return ['Always', 'IfNotPresent', 'Never'].includes(v as string) ? undefined : 'expected Always, IfNotPresent or Never';
    case 'nativeSidecars':
      return ['auto', 'enabled', 'disabled'].includes(v as string) ? undefined : 'expected auto, enabled or disabled';
    case 'outboundTrafficPolicy':
      return ['ALLOW_ANY', 'REGISTRY_ONLY'].includes(v as string) ? undefined : 'expected ALLOW_ANY or REGISTRY_ONLY';
    case 'controlPlaneCaBundle':
      if (typeof v !== 'string') return 'expected a string (PEM)';
      return v === '' || /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(v) ? undefined : 'expected PEM certificates (-----BEGIN CERTIFICATE-----) or ""';
    case 'mtlsMode':
      return ['PERMISSIVE', 'STRICT', 'DISABLE'].includes(v as string) ? undefined : 'expected PERMISSIVE, STRICT or DISABLE';
    case 'holdApplicationUntilProxyStarts':
    case 'rewriteAppProbes':
    case 'workloadIdentity':
      return typeof v === 'boolean' ? undefined : 'expected a boolean';
    case 'proxyUid':
      return Number.isInteger(v) && (v as number) > 0 ? undefined : 'expected a positive integer';
    case 'proxyConcurrency':
      return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 1024 ? undefined : 'expected a whole number from 1 to 1024';
    case 'excludeInboundPorts':
    case 'excludeOutboundPorts':
      return isPorts(v) ? undefined : 'expected a list of ports';
    case 'includeInboundPorts':
      return (Array.isArray(v) && v.length === 1 && v[0] === '*') || isPorts(v) ? undefined : 'expected ["*"] or a list of ports';
    case 'excludeOutboundIpRanges':
    case 'includeOutboundIpRanges':
    case 'ignoredNamespaces':
      return isStrings(v) ? undefined : 'expected a list of strings';
    case 'resources': {
      if (v === null || typeof v !== 'object') return 'expected {requests, limits}';
      for (const [k, list] of Object.entries(v as Record<string, unknown>)) {
        if (k !== 'requests' && k !== 'limits') return `${k}: unknown field`;
        if (list === null || typeof list !== 'object') return `${k}: expected {cpu, memory}`;
        for (const [r, q] of Object.entries(list as Record<string, unknown>)) {
          if (r !== 'cpu' && r !== 'memory') return `${k}.${r}: unknown field`;
          if (typeof q !== 'string') return `${k}.${r}: expected a quantity string`;
          if (!isQuantity(q)) return `${k}.${r}: ${JSON.stringify(q)} is not a Kubernetes quantity`;
        }
      }
      return undefined;
    }
  }
}

/** The proxy's log levels (pino's); any other value makes the proxy refuse to start. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export const LOG_LEVELS_TEXT = `${LOG_LEVELS.slice(0, -1).join(', ')} or ${LOG_LEVELS.at(-1)}`;

// A non-negative Kubernetes resource quantity: a decimal number and an optional
// binary-SI (Ki…Ei), decimal-SI (n u m k M G T P E) or exponent (e3, E-2) suffix.
const QUANTITY = /^\+?(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
const SUFFIX: Record<string, number> = {
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
};

/** True for what the API server accepts as a resource quantity ("250m", "1.5", "128Mi", "1e9"). */
export function isQuantity(s: string): boolean {
  return QUANTITY.test(s);
}

/** A quantity's value (cores or bytes), for comparing a request with its limit; NaN when not a quantity. */
export function quantityValue(s: string): number {
  const m = QUANTITY.exec(s);
  if (!m) return NaN;
  const suffix = m[2] ?? '';
  const factor = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : SUFFIX[suffix]!;
  return Number(m[1]) * factor;
}

/** Parses "1.30", "v1.30.2", "1.30+" (GKE) into [major, minor]; undefined when unknown. */
export function parseKubernetesVersion(v: string | undefined): [number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)/.exec((v ?? '').trim());
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * Native sidecars (SidecarContainers) are on by default from 1.29 (beta) and GA
 * in 1.33. `auto` uses them from 1.29; an unknown version means no.
 */
export function supportsNativeSidecars(version: string | undefined): boolean {
  const v = parseKubernetesVersion(version);
  return v !== undefined && (v[0] > 1 || (v[0] === 1 && v[1] >= 29));
}

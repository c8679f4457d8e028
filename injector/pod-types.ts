/**
 * The parts of the Kubernetes Pod object the injector reads and writes. Other
 * fields pass through untouched (the index signatures keep them), so a pod
 * from a newer API version survives a round trip.
 */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  managedFields?: unknown[];
  [k: string]: unknown;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}

export interface ContainerPort {
  containerPort: number;
  name?: string;
  protocol?: string;
  [k: string]: unknown;
}

export interface Probe {
  httpGet?: { path?: string; port: number | string; host?: string; scheme?: string; httpHeaders?: { name: string; value: string }[] };
  tcpSocket?: { port: number | string; host?: string };
  grpc?: { port: number; service?: string };
  exec?: unknown;
  initialDelaySeconds?: number;
  timeoutSeconds?: number;
  periodSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
  terminationGracePeriodSeconds?: number;
  [k: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  env?: EnvVar[];
  ports?: ContainerPort[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  restartPolicy?: string;
  [k: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; [k: string]: unknown }[];
  hostNetwork?: boolean;
  serviceAccountName?: string;
  [k: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: PodSpec;
  [k: string]: unknown;
}

export const PROXY_CONTAINER = 'outrigger-proxy';
export const INIT_CONTAINER = 'outrigger-init';
export const PODINFO_VOLUME = 'outrigger-podinfo';
export const STATE_VOLUME = 'outrigger-state';
/** The projected service-account token (audience outrigger) the sidecar presents for its certificate. */
export const TOKEN_VOLUME = 'outrigger-token';

/** Ports of the sidecar inside the pod. */
export const PORTS = {
  admin: 15000,
  outbound: 15001,
  inbound: 15006,
  status: 15021,
  /** First inbound listener port; the k-th captured app port (sorted) is inboundBase + k. */
  inboundBase: 15100,
  inboundMax: 15199,
} as const;

/** Ports an app may not have captured or redirected: the sidecar's own. */
export function isReservedPort(p: number): boolean {
  return p === PORTS.admin || p === PORTS.outbound || p === PORTS.inbound || p === PORTS.status || (p >= PORTS.inboundBase && p <= PORTS.inboundMax);
}

/** Annotation and label keys (all under outrigger.io/ except Kubernetes' own). */
export const ANNOTATIONS = {
  inject: 'outrigger.io/inject',
  status: 'outrigger.io/status',
  proxyImage: 'outrigger.io/proxy-image',
  proxyCpu: 'outrigger.io/proxy-cpu',
  proxyMemory: 'outrigger.io/proxy-memory',
  proxyCpuLimit: 'outrigger.io/proxy-cpu-limit',
  proxyMemoryLimit: 'outrigger.io/proxy-memory-limit',
  logLevel: 'outrigger.io/log-level',
  controlPlaneAddress: 'outrigger.io/control-plane-address',
  nativeSidecar: 'outrigger.io/native-sidecar',
  holdApplication: 'outrigger.io/hold-application-until-proxy-starts',
  rewriteAppProbes: 'outrigger.io/rewrite-app-probes',
  includeInboundPorts: 'outrigger.io/include-inbound-ports',
  excludeInboundPorts: 'outrigger.io/exclude-inbound-ports',
  excludeOutboundPorts: 'outrigger.io/exclude-outbound-ports',
  excludeOutboundIpRanges: 'outrigger.io/exclude-outbound-ip-ranges',
  includeOutboundIpRanges: 'outrigger.io/include-outbound-ip-ranges',
  defaultContainer: 'kubectl.kubernetes.io/default-container',
} as const;

/** Environment variables the injected proxy reads. */
export const ENV = {
  appProbes: 'OUTRIGGER_APP_PROBES',
  inboundPorts: 'OUTRIGGER_INBOUND_PORTS',
  outboundPolicy: 'OUTRIGGER_OUTBOUND_POLICY',
  logLevel: 'OUTRIGGER_LOG_LEVEL',
  /** The proxy's workers (its --concurrency default). */
  concurrency: 'OUTRIGGER_CONCURRENCY',
  /** The control plane's CA bundle (PEM), inlined as Linkerd inlines its trust anchors: read by `--control-plane-ca env:…`. */
  controlPlaneCa: 'OUTRIGGER_CONTROL_PLANE_CA',
} as const;

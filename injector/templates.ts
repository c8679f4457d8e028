import type { AppProbe } from './app-probes.js';
import type { MeshConfig } from './mesh-config.js';
import type { RedirectOptions } from './redirect-rules.js';
import { ENV, INIT_CONTAINER, PODINFO_VOLUME, PORTS, PROXY_CONTAINER, STATE_VOLUME, TOKEN_VOLUME, type Container } from './pod-types.js';

/**
 * Everything the templates need, decided by inject() from mesh config +
 * annotations; the capture part is what the init container's
 * `outrigger redirect` args carry (its ports are fixed: PORTS).
 */
export interface InjectionValues extends Omit<RedirectOptions, 'outboundPort' | 'inboundPort'> {
  image: string;
  imagePullPolicy: string;
  controlPlaneAddress: string;
  nodeCluster: string;
  logLevel: string;
  /** Proxy workers (mesh config proxyConcurrency). */
  concurrency: number;
  resources: MeshConfig['resources'];
  native: boolean;
  holdApplication: boolean;
  outboundPolicy: string;
  appProbes: Record<string, AppProbe>;
  /** Mount the projected token and pass --sa-token-file (docs/security.md). */
  workloadIdentity: boolean;
  mtlsMode: MeshConfig['mtlsMode'];
  /** PEM of the control plane's CA; non-empty: TLS to the control plane, verified with it. */
  controlPlaneCa: string;
}

export const TOKEN_DIR = '/var/run/secrets/outrigger/tokens';
export const TOKEN_FILE = `${TOKEN_DIR}/outrigger-token`;

export const PODINFO_DIR = '/etc/outrigger/podinfo';
export const STATE_DIR = '/var/lib/outrigger';
export const INBOUND_CONFIG = `${STATE_DIR}/inbound.yaml`;

export function formatInboundPorts(ports: [number, number][]): string {
  return ports.map(([app, listener]) => `${app}=${listener}`).join(',');
}

function fieldEnv(name: string, fieldPath: string): Record<string, unknown> {
  return { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } };
}

const readyGet = { path: '/ready', port: PORTS.status, scheme: 'HTTP' };

/** The proxy container; in native mode it is an init container with restartPolicy: Always. */
export function proxyContainer(v: InjectionValues): Container {
  const env: Record<string, unknown>[] = [
    fieldEnv('POD_NAME', 'metadata.name'),
    fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('POD_IP', 'status.podIP'),
    fieldEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    fieldEnv('NODE_NAME', 'spec.nodeName'),
    { name: ENV.logLevel, value: v.logLevel },
    { name: ENV.concurrency, value: String(v.concurrency) },
    { name: ENV.inboundPorts, value: formatInboundPorts(v.inboundPorts) },
    { name: ENV.outboundPolicy, value: v.outboundPolicy },
  ];
  if (Object.keys(v.appProbes).length > 0) env.push({ name: ENV.appProbes, value: JSON.stringify(v.appProbes) });
  // Inline, as Linkerd passes its trust anchors: a ConfigMap would have to exist in every pod's namespace.
  if (v.controlPlaneCa !== '') env.push({ name: ENV.controlPlaneCa, value: v.controlPlaneCa });
  const c: Container = {
    name: PROXY_CONTAINER,
    image: v.image,
    imagePullPolicy: v.imagePullPolicy,
    args: [
      'sidecar',
      '--control-plane', v.controlPlaneAddress,
      '--node-id', '$(POD_NAME).$(POD_NAMESPACE)',
      '--node-cluster', v.nodeCluster,
      '--node-labels-file', `${PODINFO_DIR}/labels`,
      '--state-dir', STATE_DIR,
      '--status-port', String(PORTS.status),
      // Inbound and outbound listeners written by outrigger-init (see inbound-config.ts).
      '--config', INBOUND_CONFIG,
      // Workload identity: the certificate for mesh mTLS, asked for with the projected token.
      ...(v.workloadIdentity ? ['--sa-token-file', TOKEN_FILE] : []),
      // TLS to the control plane: its certificate verified with the mesh config's bundle; the SVID then authenticates the streams.
      ...(v.controlPlaneCa !== '' ? ['--control-plane-ca', `env:${ENV.controlPlaneCa}`] : []),
    ],
    env: env as unknown as Container['env'],
    ports: [{ name: 'outrigger-status', containerPort: PORTS.status, protocol: 'TCP' }],
    readinessProbe: { httpGet: { ...readyGet }, periodSeconds: 2, timeoutSeconds: 3, failureThreshold: 3 },
    resources: resourcesOf(v.resources),
    securityContext: {
      runAsUser: v.proxyUid,
      runAsGroup: v.proxyUid,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [
      { name: PODINFO_VOLUME, mountPath: PODINFO_DIR, readOnly: true },
      { name: STATE_VOLUME, mountPath: STATE_DIR },
      ...(v.workloadIdentity ? [{ name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true }] : []),
    ],
  };
  if (v.native) {
    // The kubelet starts later init containers and the app only after this
    // startup probe passes: the app never starts before the proxy is ready.
    c.restartPolicy = 'Always';
    c.startupProbe = { httpGet: { ...readyGet }, periodSeconds: 1, timeoutSeconds: 3, failureThreshold: 600 };
  } else if (v.holdApplication) {
    // Containers start in order and the kubelet waits for postStart before
    // the next one: the proxy is first, so the app starts after it is ready.
    c.lifecycle = { postStart: { exec: { command: ['outrigger', 'wait-ready', '--timeout', '5m'] } } };
  }
  return c;
}

/** The init container that installs traffic capture (`outrigger redirect`). */
export function initContainer(v: InjectionValues): Container {
  const args = ['redirect', '--proxy-uid', String(v.proxyUid), '--outbound-port', String(PORTS.outbound)];
  if (v.inboundPorts.length) args.push('--inbound-ports', formatInboundPorts(v.inboundPorts));
  // Declared ports go to their own listeners; the other captured ones (`*`: all but the excluded) to 15006.
  const include = v.includeInboundPorts === '*' ? '*' : v.includeInboundPorts.join(',');
  if (include !== '') args.push('--include-inbound-ports', include);
  if (v.excludeInboundPorts.length) args.push('--exclude-inbound-ports', v.excludeInboundPorts.join(','));
  // The proxy's bootstrap: inbound listeners, and the outbound listener whose catch-all follows the policy.
  args.push('--inbound-config', INBOUND_CONFIG, '--outbound-policy', v.outboundPolicy);
  if (v.workloadIdentity && v.mtlsMode !== 'DISABLE') args.push('--mtls-mode', v.mtlsMode);
  if (v.excludeOutboundPorts.length) args.push('--exclude-outbound-ports', v.excludeOutboundPorts.join(','));
  if (v.excludeOutboundIpRanges.length) args.push('--exclude-outbound-ip-ranges', v.excludeOutboundIpRanges.join(','));
  args.push('--include-outbound-ip-ranges', v.includeOutboundIpRanges.join(','));
  return {
    name: INIT_CONTAINER,
    image: v.image,
    imagePullPolicy: v.imagePullPolicy,
    args,
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
    securityContext: {
      // iptables needs root in the pod's network namespace with NET_ADMIN and
      // NET_RAW; nothing else.
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      readOnlyRootFilesystem: false,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
    volumeMounts: [{ name: STATE_VOLUME, mountPath: STATE_DIR }],
  };
}

export function volumes(v: Pick<InjectionValues, 'workloadIdentity'>): { name: string; [k: string]: unknown }[] {
  const token = v.workloadIdentity
    ? [
        {
          name: TOKEN_VOLUME,
          projected: { sources: [{ serviceAccountToken: { audience: 'outrigger', expirationSeconds: 3600, path: 'outrigger-token' } }] },
        },
      ]
    : [];
  return [
    {
      name: PODINFO_VOLUME,
      downwardAPI: {
        items: [
          { path: 'labels', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.labels' } },
          { path: 'annotations', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.annotations' } },
        ],
      },
    },
    { name: STATE_VOLUME, emptyDir: {} },
    ...token,
  ];
}

function resourcesOf(r: MeshConfig['resources']): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  const clean = (l: Record<string, string | undefined>): Record<string, string> =>
    Object.fromEntries(Object.entries(l).filter(([, q]) => q !== undefined && q !== '')) as Record<string, string>;
  if (Object.keys(clean({ ...r.requests })).length) out.requests = clean({ ...r.requests });
  if (Object.keys(clean({ ...r.limits })).length) out.limits = clean({ ...r.limits });
  return out;
}

import { stringify } from 'yaml';
import type { OutboundTrafficPolicy } from './mesh-config.js';

/**
 * The sidecar's inbound resources for a pod, derived from its captured ports
 * (app port → inbound listener port, see redirect-rules.ts): per app port a
 * Listener on its inbound port, a RouteConfiguration sending every HTTP/gRPC
 * request to the app, and a Cluster at 127.0.0.1:<app port>, which is also the
 * listener's defaultCluster so opaque TCP reaches the app too.
 *
 * `outrigger redirect --inbound-config FILE` writes them (and the outbound
 * ones below) into the pod's state volume and the proxy reads the file as
 * bootstrap config (`--config`), so inbound traffic works before, and without,
 * anything from the control plane; the control plane can replace any of them
 * by name.
 */
/** The inbound listeners' mesh mTLS mode (docs/security.md); undefined: none. */
export type InboundMtls = 'PERMISSIVE' | 'STRICT' | undefined;

function peerAuth(mtls: InboundMtls): Record<string, unknown> {
  return mtls ? { peerAuthentication: `PEER_AUTHENTICATION_${mtls}` } : {};
}

export function inboundDocuments(ports: [number, number][], bindHost: string, mtls?: InboundMtls): Record<string, unknown>[] {
  const docs: Record<string, unknown>[] = [];
  const doc = generated(docs, 'inbound');
  for (const [app, listener] of ports) {
    const name = `inbound-${app}`;
    doc('Listener', name, { address: { host: bindHost, port: listener }, routeConfig: name, defaultCluster: name, ...peerAuth(mtls) });
    doc('RouteConfiguration', name, {
      virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ name: 'to-app', match: { prefix: '/' }, route: { cluster: name } }] }],
    });
    doc('Cluster', name, { type: 'DISCOVERY_TYPE_STATIC', endpoints: [{ address: { host: '127.0.0.1', port: app } }] });
  }
  return docs;
}

/** Names of the inbound catch-all resources; the control plane may replace them by name. */
export const INBOUND = { listener: 'inbound', routeConfig: 'inbound', passthrough: 'inbound-passthrough' } as const;

/**
 * The inbound catch-all: the Listener `inbound` on the inbound port (where
 * iptables redirects captured inbound TCP that has no listener of its own:
 * ports the pod does not declare, or declared past the 100th) with the
 * RouteConfiguration `inbound`, whose only virtual host (`*`) sends every HTTP
 * and gRPC request to the Cluster `inbound-passthrough`, also the listener's
 * defaultCluster for opaque TCP.
 *
 * `inbound-passthrough` is DISCOVERY_TYPE_ORIGINAL_DST: each connection goes
 * to its original destination, the pod IP and port the client dialled (as
 * Istio does since 1.10; an app bound only to 127.0.0.1 is not reached this
 * way). It never routes by Host / :authority (`useHostHeader: false`): an
 * inbound request's Host is the pod's own service name, and going there would
 * send it out of the pod again; a connection that was not redirected (someone
 * dialling 15006 itself) has no destination and is refused (flag OD).
 */
export function inboundCatchAllDocuments(inboundPort: number, bindHost: string, mtls?: InboundMtls): Record<string, unknown>[] {
  const docs: Record<string, unknown>[] = [];
  const doc = generated(docs, 'inbound');
  doc('Listener', INBOUND.listener, { address: { host: bindHost, port: inboundPort }, routeConfig: INBOUND.routeConfig, defaultCluster: INBOUND.passthrough, ...peerAuth(mtls) });
  doc('RouteConfiguration', INBOUND.routeConfig, {
    virtualHosts: [{ name: 'any-port', domains: ['*'], routes: [{ name: 'to-original-destination', match: { prefix: '/' }, route: { cluster: INBOUND.passthrough } }] }],
  });
  doc('Cluster', INBOUND.passthrough, { type: 'DISCOVERY_TYPE_ORIGINAL_DST', originalDst: { useHostHeader: false } });
  return docs;
}

/** What the sidecar does with captured outbound traffic to destinations the mesh does not know. */
export type OutboundPolicy = OutboundTrafficPolicy;

/** Names of the outbound resources; the control plane replaces them by pushing the same names. */
export const OUTBOUND = { listener: 'outbound', routeConfig: 'outbound', passthrough: 'passthrough' } as const;

/**
 * The sidecar's outbound resources: the Listener `outbound` on the outbound
 * port (where iptables redirects the app's outbound TCP) with the
 * RouteConfiguration `outbound`.
 *
 * - ALLOW_ANY: the route config's only virtual host is a catch-all (`*`)
 *   sending every HTTP and gRPC request to the Cluster `passthrough`
 *   (DISCOVERY_TYPE_ORIGINAL_DST: where the app was going), which is also the
 *   listener's defaultCluster, so opaque TCP (and TLS the app originates)
 *   passes through too.
 * - REGISTRY_ONLY: no virtual host and no defaultCluster: an HTTP or gRPC
 *   request for a host the control plane has not pushed gets the `no_route`
 *   local reply (404 / UNIMPLEMENTED, flag NR), and an opaque connection is
 *   closed (flag NC); both are access-logged.
 *
 * The control plane adds the mesh's services by pushing a RouteConfiguration
 * named `outbound`, which replaces this one; to keep ALLOW_ANY it must carry
 * the same catch-all virtual host (docs/injector.md).
 */
export function outboundDocuments(policy: OutboundPolicy, outboundPort: number, bindHost: string): Record<string, unknown>[] {
  const docs: Record<string, unknown>[] = [];
  const doc = generated(docs, 'outbound');
  const allowAny = policy === 'ALLOW_ANY';
  doc('Listener', OUTBOUND.listener, {
    address: { host: bindHost, port: outboundPort },
    routeConfig: OUTBOUND.routeConfig,
    ...(allowAny ? { defaultCluster: OUTBOUND.passthrough } : {}),
  });
  doc('RouteConfiguration', OUTBOUND.routeConfig, {
    virtualHosts: allowAny ? [passthroughVirtualHost()] : [],
  });
  // Connecting to anywhere (the internet included) may take longer than the 1s default.
  if (allowAny) doc('Cluster', OUTBOUND.passthrough, { type: 'DISCOVERY_TYPE_ORIGINAL_DST', connectTimeout: '10s' });
  return docs;
}

/** The ALLOW_ANY catch-all: any host, any path, to the pass-through cluster. */
export function passthroughVirtualHost(): Record<string, unknown> {
  return {
    name: 'allow-any',
    domains: ['*'],
    routes: [{ name: 'passthrough', match: { prefix: '/' }, route: { cluster: OUTBOUND.passthrough } }],
  };
}

export interface BootstrapOptions {
  /** Captured inbound app ports and their listener ports. */
  inboundPorts: [number, number][];
  /** The inbound catch-all listener's port; undefined when the rules send nothing there (no listener written). */
  inboundPort?: number | undefined;
  /** `::` (dual stack) or `0.0.0.0`. */
  bindHost: string;
  outboundPort: number;
  outboundPolicy: OutboundPolicy;
  /** Mesh mTLS on the inbound listeners (`redirect --mtls-mode`). */
  mtls?: InboundMtls;
}

/** The file `outrigger redirect --inbound-config` writes: inbound listeners (per port, then the catch-all), then the outbound ones. */
export function inboundConfigYaml(o: BootstrapOptions): string {
  const catchAll = o.inboundPort !== undefined;
  const header =
    '# Generated by `outrigger redirect --inbound-config`: the inbound listeners of this pod' +
    (catchAll ? ` (its declared ports, and the catch-all on ${o.inboundPort})` : '') +
    ' and its\n' +
    `# outbound listener (outbound traffic policy ${o.outboundPolicy}).\n`;
  const docs = [
    ...inboundDocuments(o.inboundPorts, o.bindHost, o.mtls),
    ...(catchAll ? inboundCatchAllDocuments(o.inboundPort!, o.bindHost, o.mtls) : []),
    ...outboundDocuments(o.outboundPolicy, o.outboundPort, o.bindHost),
  ];
  return header + docs.map((d) => stringify(d)).join('---\n');
}

function generated(docs: Record<string, unknown>[], what: string): (kind: string, name: string, spec: Record<string, unknown>) => void {
  return (kind, name, spec) =>
    void docs.push({ apiVersion: 'outrigger.io/v1', kind, metadata: { name, labels: { 'outrigger.io/generated': what } }, spec });
}

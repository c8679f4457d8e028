import { readFileSync } from 'node:fs';
import net, { isIP } from 'node:net';
import tls, { type PeerCertificate } from 'node:tls';
import { checkPeerSvid, principalMatcher } from '../../core/spiffe.js';
import type { SvidSource } from '../../core/svid.js';
import { TlsMode, type UpstreamTls } from '../../gen/outrigger/config/v1/cluster_pb.js';
import type { EndpointAddress } from './endpoint.js';

/**
 * A cluster's `tls`, compiled once per config version: how its upstream
 * connections are secured. MESH: mutual TLS with this sidecar's workload
 * certificate (read per connection, so a rotation reaches new connections
 * and leaves open ones alone), the server's SPIFFE ID checked against
 * `subjectAltNames` (default: any of our trust domain). SIMPLE: ordinary
 * server-authenticated TLS.
 */
export interface UpstreamTlsPolicy {
  readonly mode: 'mesh' | 'simple';
  /** Distinguishes pooled connections of different policies to one endpoint. */
  readonly poolKey: string;
  readonly sni: string;
  readonly ca: Buffer | undefined;
  readonly altNames: readonly string[];
  readonly accept: ((id: string) => boolean) | undefined;
}

/** undefined for plaintext clusters (no per-request cost for them). */
export function upstreamTlsOf(t: UpstreamTls | undefined, clusterName: string): UpstreamTlsPolicy | undefined {
  if (!t || t.mode === TlsMode.UNSPECIFIED || t.mode === TlsMode.DISABLE) return undefined;
  const mode = t.mode === TlsMode.MESH ? 'mesh' : 'simple';
  const matchers = mode === 'mesh' && t.subjectAltNames.length > 0 ? t.subjectAltNames.map(principalMatcher) : undefined;
  return {
    mode,
    poolKey: `${mode}|${clusterName}|${t.sni}|${t.caFile}|${t.subjectAltNames.join(',')}`,
    sni: t.sni,
    ca: mode === 'simple' && t.caFile ? readFileSync(t.caFile) : undefined,
    altNames: t.subjectAltNames,
    accept: matchers ? (id) => matchers.some((m) => m(id)) : undefined,
  };
}

/** The SPIFFE ID a mesh upstream's certificate was verified to carry, set on its TLS socket. */
const UPSTREAM_PRINCIPAL = Symbol('outrigger.upstreamPrincipal');
type PrincipalCarrier = { [UPSTREAM_PRINCIPAL]?: string };

/** The verified SPIFFE ID of a mesh mTLS upstream connection (undefined: not mesh mTLS, or not connected yet). */
export function upstreamPrincipalOf(socket: object | null | undefined): string | undefined {
  return socket ? (socket as PrincipalCarrier)[UPSTREAM_PRINCIPAL] : undefined;
}

/** Thrown into a connection attempt that cannot start (MESH without a workload certificate yet). */
export class NoWorkloadCertificate extends Error {
  constructor() {
    super('no workload certificate yet: mesh TLS cannot start (is the control plane issuing certificates?)');
  }
}

/**
 * Opens the TLS connection for one upstream connection attempt, negotiating
 * `alpn`. A connection that cannot be made (no certificate) is a socket that
 * fails at once, so every pool handles it as any connect failure.
 */
export function connectTls(policy: UpstreamTlsPolicy, ep: EndpointAddress, identity: SvidSource | undefined, alpn: string[]): net.Socket {
  const base = { host: ep.host, port: ep.port, noDelay: true, ALPNProtocols: alpn };
  const servername = policy.sni || (isIP(ep.host) ? undefined : ep.host);
  if (policy.mode === 'simple') {
    return tls.connect({
      ...base,
      servername,
      ca: policy.ca,
      checkServerIdentity:
        policy.altNames.length > 0
          ? (_host, cert) => firstOk(policy.altNames.map((n) => tls.checkServerIdentity(n, cert)))
          : (host, cert) => tls.checkServerIdentity(policy.sni || host, cert),
    });
  }
  const svid = identity?.current();
  if (!svid) {
    const s = new net.Socket();
    setImmediate(() => s.destroy(new NoWorkloadCertificate()));
    return s;
  }
  const socket: tls.TLSSocket = tls.connect({
    ...base,
    servername,
    secureContext: svid.secureContext,
    rejectUnauthorized: true,
    // The chain was verified against the mesh bundle; what matters is the SPIFFE ID, not a host name.
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const v = checkPeerSvid(cert.subjectaltname, svid.trustDomain, policy.accept);
      if (!v.ok) return new Error(`upstream peer identity refused: ${v.reason}`);
      // Kept for telemetry (destination_principal), read once per answered request.
      (socket as PrincipalCarrier)[UPSTREAM_PRINCIPAL] = v.id;
      return undefined;
    },
  });
  return socket;
}

function firstOk(results: (Error | undefined)[]): Error | undefined {
  return results.some((r) => r === undefined) ? undefined : results[0];
}

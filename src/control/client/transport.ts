import type { SecureClientSessionOptions } from 'node:http2';
import type { Svid } from '../../core/svid.js';

/**
 * TLS toward the control plane, PEM contents. `ca` verifies the control
 * plane's certificate (the system CAs when absent); `cert` + `key` present
 * a client certificate (mTLS, what `--client-ca` on the control plane
 * accepts).
 */
export interface ControlTls {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

/**
 * The base URL and node options for a gRPC transport to the control plane.
 * `HOST:PORT` is h2c unless TLS options are given; an explicit `https://`
 * address is TLS (system CAs unless `ca`), `http://` with TLS options is a
 * contradiction and throws.
 */
export function controlTransport(address: string, tls: ControlTls | undefined): { baseUrl: string; nodeOptions?: SecureClientSessionOptions } {
  const scheme = /^(https?):\/\//.exec(address)?.[1];
  if (scheme === 'http' && tls) throw new Error(`${address}: TLS options given for an http:// address; use https:// or HOST:PORT`);
  const secure = scheme === 'https' || tls !== undefined;
  const baseUrl = scheme ? address : `${secure ? 'https' : 'http'}://${address}`;
  if (!secure) return { baseUrl };
  return { baseUrl, nodeOptions: { ...(tls?.ca ? { ca: tls.ca } : {}), ...(tls?.cert ? { cert: tls.cert, key: tls.key } : {}) } };
}

/** Whether `address` with `tls` is a TLS connection (what decides if a client certificate can be presented). */
export function isSecureControl(address: string, tls: ControlTls | undefined): boolean {
  return tls !== undefined || /^https:\/\//.test(address);
}

/**
 * The TLS options of one new control connection: `tls` plus this sidecar's
 * current workload certificate as client certificate (mTLS authenticates it
 * to the control plane), when the connection is TLS, a certificate is held
 * and still valid, and no operator-given client certificate takes the place.
 * undefined when no SVID is presented (the caller then sends its token).
 */
export function withSvid(address: string, tls: ControlTls | undefined, svid: Svid | undefined, nowMs: number): ControlTls | undefined {
  if (!svid || svid.notAfterMs <= nowMs || tls?.cert || !isSecureControl(address, tls)) return undefined;
  return { ...tls, cert: svid.certChainPem, key: svid.keyPem };
}

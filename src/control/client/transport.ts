import type { SecureClientSessionOptions } from 'node:http2';

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

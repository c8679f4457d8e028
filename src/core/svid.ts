import type { SecureContext } from 'node:tls';

/**
 * This sidecar's X.509-SVID as the data path uses it: one node:tls context
 * holding the certificate chain, the in-memory key and the trust bundle as
 * CA, used for both sides of mesh mTLS. Immutable: a rotation makes a new
 * one, so a handshake that took a context keeps it whole.
 */
export interface Svid {
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** Leaf first, then intermediates (PEM). */
  readonly certChainPem: string;
  /** The private key (PEM), in this process's memory only: node:tls servers take it to swap their context. */
  readonly keyPem: string;
  /** PEM roots of the trust bundle. */
  readonly bundlePem: readonly string[];
  readonly serial: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  readonly secureContext: SecureContext;
}

/**
 * Where the current SVID is read, once per new connection (never per
 * request): the sidecar's certificate manager. undefined until the first
 * certificate arrived.
 */
export interface SvidSource {
  current(): Svid | undefined;
}

/**
 * SPIFFE IDs as the mesh uses them: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
 * Pure string rules shared by the CA (control plane), the sidecar's certificate
 * manager and the data path's peer checks, so they can never disagree.
 */

export interface WorkloadId {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** DNS-label-ish names (Kubernetes namespaces and service accounts are DNS subdomains). */
const NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
/** SPIFFE trust domains: lower-case letters, digits, dots, dashes, underscores. */
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

/** Why a trust domain is not valid, or undefined when it is. */
export function trustDomainError(td: string): string | undefined {
  return TRUST_DOMAIN.test(td) ? undefined : `"${td}" is not a SPIFFE trust domain (lower-case letters, digits, ".", "-", "_")`;
}

/** Why a namespace or service-account name is not valid, or undefined. */
export function nameError(what: string, v: string): string | undefined {
  return NAME.test(v) ? undefined : `${what} "${v}" is not a valid name`;
}

export function spiffeIdOf(w: WorkloadId): string {
  return `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`;
}

/** The workload a mesh SPIFFE ID names, or undefined for anything else (other paths, other schemes). */
export function parseSpiffeId(id: string): WorkloadId | undefined {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  if (!m || trustDomainError(m[1]!) || !NAME.test(m[2]!) || !NAME.test(m[3]!)) return undefined;
  return { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! };
}

/** The trust domain of any SPIFFE ID (`spiffe://TD/...`), or undefined. */
export function trustDomainOf(id: string): string | undefined {
  const m = /^spiffe:\/\/([^/]+)(\/|$)/.exec(id);
  return m ? m[1] : undefined;
}

/**
 * The URI SANs of a certificate as node:tls reports them
 * (`subjectaltname: 'DNS:a, URI:spiffe://td/ns/x/sa/y'`). Values containing
 * ", " are not expected in SPIFFE IDs (a path segment cannot hold a space).
 */
export function uriSans(subjectaltname: string | undefined): string[] {
  if (!subjectaltname) return [];
  const out: string[] = [];
  for (const part of subjectaltname.split(', ')) if (part.startsWith('URI:')) out.push(part.slice(4));
  return out;
}

/**
 * A principal pattern as RBAC and cluster `subjectAltNames` take it: exact,
 * or a prefix ending in "*" (`spiffe://td/ns/shop/*`, `spiffe://td/*`).
 * A lone "*" matches any identity.
 */
export function principalMatcher(pattern: string): (id: string) => boolean {
  if (pattern.endsWith('*')) {
    const prefix = pattern.slice(0, -1);
    return (id) => id.startsWith(prefix);
  }
  return (id) => id === pattern;
}

/**
 * The SVID verdict on a peer certificate TLS already verified against the
 * bundle: exactly one URI SAN (X.509-SVID rule), a SPIFFE ID of `trustDomain`,
 * and (when given) one of the accepted patterns. Returns the ID, or why not.
 */
export function checkPeerSvid(
  subjectaltname: string | undefined,
  trustDomain: string,
  accept?: (id: string) => boolean,
): { ok: true; id: string } | { ok: false; reason: string } {
  const uris = uriSans(subjectaltname);
  if (uris.length !== 1) return { ok: false, reason: `an SVID has exactly one URI SAN, this certificate has ${uris.length}` };
  const id = uris[0]!;
  const td = trustDomainOf(id);
  if (td === undefined) return { ok: false, reason: `URI SAN "${id}" is not a SPIFFE ID` };
  if (td !== trustDomain) return { ok: false, reason: `SPIFFE ID "${id}" is not of trust domain "${trustDomain}"` };
  if (accept && !accept(id)) return { ok: false, reason: `SPIFFE ID "${id}" is not one of the expected identities` };
  return { ok: true, id };
}

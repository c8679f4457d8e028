import { createHash, timingSafeEqual } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { checkPeerSvid } from '../../core/spiffe.js';
import { Code, ConnectError, createContextKey, type HandlerContext } from '@connectrpc/connect';
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';

type NodeServerRequest = IncomingMessage | Http2ServerRequest;

/**
 * Who made a call, as established from the connection (mTLS) before any
 * handler runs: the subject of a client certificate TLS verified against
 * --client-ca, or why a certificate the client presented was not verified.
 */
export interface Peer {
  readonly certSubject?: string;
  readonly certError?: string;
  /**
   * A workload certificate (X.509-SVID) that chained to the mesh's trust
   * bundle: its URI SAN. Never an operator credential (certSubject is unset).
   */
  readonly workloadId?: string;
  /** Why a certificate that chained to the mesh bundle is not a usable SVID. */
  readonly workloadError?: string;
}

export const peerKey = createContextKey<Peer>({});

export interface AuthOptions {
  /** The bearer token operators must send; undefined = no token accepted. */
  readonly token?: string;
  /** Whether a verified client certificate (signed by --client-ca) is accepted. */
  readonly mtls: boolean;
}

/**
 * Reads the client certificate of the connection, if any. The TLS server
 * requests one but does not fail the handshake without it (sidecars, probes
 * and token-carrying operators connect without one), so verification is
 * read here: `authorized` means it chains to --client-ca.
 */
export function peerOf(req: NodeServerRequest, mesh?: MeshRoots): Peer {
  const sock = req.socket as Partial<TLSSocket>;
  if (!sock || typeof sock.getPeerCertificate !== 'function') return {};
  // Once per connection: a connection's certificate does not change.
  const cached = peers.get(sock as object);
  if (cached !== undefined) return cached;
  const peer = readPeer(sock, mesh);
  peers.set(sock as object, peer);
  return peer;
}

/** The verdict on each TLS connection's client certificate (connections outlive calls). */
const peers = new WeakMap<object, Peer>();

/** The mesh's roots as the control plane's TLS server trusts them (workload certificates chain to these). */
export interface MeshRoots {
  /** SHA-256 fingerprints (node:crypto's `fingerprint256` form) of the bundle's roots, current at the call. */
  fingerprints(): ReadonlySet<string>;
  readonly trustDomain: string;
}

function readPeer(sock: Partial<TLSSocket>, mesh: MeshRoots | undefined): Peer {
  const cert = sock.getPeerCertificate!(mesh !== undefined) as DetailedPeerCertificate;
  // No certificate presented: an empty object.
  if (!cert || Object.keys(cert).length === 0) return {};
  if (!sock.authorized) return { certError: String(sock.authorizationError ?? 'not verified') };
  if (mesh && chainsTo(cert, mesh.fingerprints())) {
    // A workload's SVID: the stream and issuance auth read its SPIFFE ID; it never authenticates an operator.
    const v = checkPeerSvid(cert.subjectaltname, mesh.trustDomain);
    return v.ok ? { workloadId: v.id } : { workloadError: v.reason };
  }
  const cn = cert.subject?.CN;
  return { certSubject: typeof cn === 'string' ? cn : 'client-certificate' };
}

/**
 * Whether the verified chain ends at one of `roots`. node:tls completes the
 * chain it reports with the issuer from the trust store, so the top of a
 * verified chain is the root it was verified against.
 */
function chainsTo(cert: DetailedPeerCertificate, roots: ReadonlySet<string>): boolean {
  let c = cert;
  for (let i = 0; i < 10; i++) {
    if (roots.has(c.fingerprint256)) return true;
    const up = c.issuerCertificate;
    if (!up || up === c || up.fingerprint256 === c.fingerprint256) return false;
    c = up;
  }
  return false;
}

/**
 * Authenticates an operator call on the server, whatever the client claims:
 * a matching `authorization: Bearer` token (constant-time compare) or a
 * client certificate verified by TLS. A certificate that was presented but
 * does not verify against --client-ca is refused even with a valid token
 * (as a TLS server that verifies certificates "if given" would). Returns
 * who it was, for the audit log; throws UNAUTHENTICATED otherwise. Tokens
 * are never logged: `who` for a token is a short hash of it.
 */
export function authenticate(ctx: HandlerContext, opts: AuthOptions): string {
  const peer = ctx.values.get(peerKey);
  if (opts.mtls && peer.certError) {
    throw new ConnectError(`client certificate not accepted (${peer.certError}): it must be signed by the control plane's --client-ca`, Code.Unauthenticated);
  }
  if (opts.mtls && peer.certSubject) return `cert:${peer.certSubject}`;
  const header = ctx.requestHeader.get('authorization') ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(header);
  const presented = m ? m[1]!.trim() : '';
  // An empty token (configured or presented) never authenticates.
  if (opts.token !== undefined && opts.token !== '' && presented !== '') {
    const a = createHash('sha256').update(presented).digest();
    const b = createHash('sha256').update(opts.token).digest();
    if (timingSafeEqual(a, b)) return `token:${b.toString('hex').slice(0, 8)}`;
  }
  if (opts.token === undefined && !opts.mtls) return 'anonymous';
  throw new ConnectError(`authentication required: ${[opts.token !== undefined ? 'a bearer token' : '', opts.mtls ? 'a client certificate signed by --client-ca' : ''].filter(Boolean).join(' or ')}`, Code.Unauthenticated);
}

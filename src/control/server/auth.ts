import { createHash, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
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
export function peerOf(req: NodeServerRequest): Peer {
  const sock = req.socket as Partial<TLSSocket>;
  if (!sock || typeof sock.getPeerCertificate !== 'function') return {};
  const cert = sock.getPeerCertificate();
  // No certificate presented: an empty object.
  if (!cert || Object.keys(cert).length === 0) return {};
  if (!sock.authorized) return { certError: String(sock.authorizationError ?? 'not verified') };
  const cn = cert.subject?.CN;
  return { certSubject: typeof cn === 'string' ? cn : 'client-certificate' };
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

import { createHash, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { Code, ConnectError, createContextKey, type HandlerContext } from '@connectrpc/connect';
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';

type NodeServerRequest = IncomingMessage | Http2ServerRequest;

/** Who made a call, as established from the connection (mTLS) before any handler runs. */
export const peerKey = createContextKey<{ certSubject?: string }>({});

export interface AuthOptions {
  /** The bearer token operators must send; undefined = no token accepted. */
  readonly token?: string;
  /** Whether a verified client certificate (signed by --client-ca) is accepted. */
  readonly mtls: boolean;
}

/** Reads the verified client certificate of the connection, if any (checked by TLS against --client-ca). */
export function peerOf(req: NodeServerRequest): { certSubject?: string } {
  const sock = req.socket as Partial<TLSSocket>;
  if (!sock || typeof sock.getPeerCertificate !== 'function' || !sock.authorized) return {};
  const cert = sock.getPeerCertificate();
  const cn = cert?.subject?.CN;
  return { certSubject: typeof cn === 'string' ? cn : 'client-certificate' };
}

/**
 * Authenticates an operator call on the server, whatever the client claims:
 * a matching `authorization: Bearer` token (constant-time compare) or a
 * client certificate verified by TLS. Returns who it was, for the audit log;
 * throws UNAUTHENTICATED otherwise. Tokens are never logged: `who` for a
 * token is a short hash of it.
 */
export function authenticate(ctx: HandlerContext, opts: AuthOptions): string {
  const peer = ctx.values.get(peerKey);
  if (opts.mtls && peer.certSubject) return `cert:${peer.certSubject}`;
  const header = ctx.requestHeader.get('authorization') ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(header);
  if (opts.token !== undefined && m) {
    const a = createHash('sha256').update(m[1]!.trim()).digest();
    const b = createHash('sha256').update(opts.token).digest();
    if (timingSafeEqual(a, b)) return `token:${b.toString('hex').slice(0, 8)}`;
  }
  if (opts.token === undefined && !opts.mtls) return 'anonymous';
  throw new ConnectError('authentication required: a bearer token or a client certificate', Code.Unauthenticated);
}

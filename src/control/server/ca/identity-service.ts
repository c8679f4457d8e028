import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { Counter, type Registry } from 'prom-client';
import { durationMs } from '../../../core/duration.js';
import { spiffeIdOf } from '../../../core/spiffe.js';
import { IdentityService } from '../../../gen/outrigger/control/v1/identity_pb.js';
import type { Logger } from '../../../observability/logger.js';
import { CsrError, type CertificateAuthority } from './certificate-authority.js';
import type { CaHolder } from './ca-holder.js';
import { callerOfSvid, type WorkloadAuthenticator, type WorkloadCaller } from './workload-auth.js';
import { peerKey } from '../auth.js';

export const DEFAULT_CERT_TTL_MS = 24 * 3600_000;

export interface IdentityServiceOptions {
  readonly ca: CertificateAuthority;
  /** The CA as it is now (root rotation); `ca` when absent. */
  readonly caHolder?: CaHolder;
  readonly auth: WorkloadAuthenticator;
  /** Longest (and default) certificate lifetime. */
  readonly certTtlMs: number;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Told of each certificate issued (status: each sidecar's certificate expiry). */
  readonly onIssued?: (nodeId: string, spiffeId: string, notAfterMs: number) => void;
}

/** The bearer token of a call, or undefined. */
export function bearerOf(ctx: HandlerContext): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(ctx.requestHeader.get('authorization') ?? '');
  return m ? m[1] : undefined;
}

/**
 * The issuance RPC. Every outcome is one audit line (`audit: true`, op
 * `issue`) and one count by result; tokens never appear (a short hash does).
 * A caller only ever gets its credential's identity: the CA refuses a CSR
 * naming any other, and a node id from another namespace is refused.
 */
export function identityService(opts: IdentityServiceOptions): ServiceImpl<typeof IdentityService> {
  const issued = new Counter({
    name: 'outrigger_control_certificates_total',
    help: 'Certificate requests, by result: issued, unauthenticated, denied, invalid',
    labelNames: ['result'],
    registers: [opts.registry],
  });
  const audit = (result: string, fields: Record<string, unknown>, msg: string): void => {
    issued.inc({ result });
    opts.logger.info({ audit: true, op: 'issue', result, ...fields }, msg);
  };
  return {
    async createCertificate(req, ctx) {
      // The stored CA may have been rotated by another replica: one read of the store per issuance.
      const ca = opts.caHolder ? await opts.caHolder.refresh() : opts.ca;
      const token = bearerOf(ctx);
      const peer = ctx.values.get(peerKey);
      // A renewal may come with the current SVID over mTLS instead of a token (the token file may be gone).
      if (!token && peer.workloadId === undefined) {
        const reason = peer.workloadError ?? 'no bearer token';
        audit('unauthenticated', { nodeId: req.nodeId, reason }, 'certificate refused');
        throw new ConnectError(`a workload credential is required: authorization: Bearer <service-account or bootstrap token>, or a workload certificate over mTLS (${reason})`, Code.Unauthenticated);
      }
      const verdict = token ? await opts.auth.authenticate(token) : callerOfSvid(peer.workloadId!, ca.trustDomain);
      if (!verdict.ok) {
        audit('unauthenticated', { nodeId: req.nodeId, reason: verdict.reason }, 'certificate refused');
        throw new ConnectError(`workload credential refused: ${verdict.reason}`, Code.Unauthenticated);
      }
      const caller: WorkloadCaller = verdict.caller;
      const spiffeId = spiffeIdOf({ trustDomain: ca.trustDomain, namespace: caller.namespace, serviceAccount: caller.serviceAccount });
      const who = { nodeId: req.nodeId, via: caller.via, token: caller.tokenHash, spiffeId };
      // Node ids are POD.NAMESPACE (the injector's); a sidecar may not claim another namespace's pod.
      if (req.nodeId !== '') {
        const dot = req.nodeId.lastIndexOf('.');
        const ns = dot < 0 ? '' : req.nodeId.slice(dot + 1);
        if (ns !== caller.namespace) {
          audit('denied', { ...who, reason: `node id namespace "${ns}" is not the credential's "${caller.namespace}"` }, 'certificate refused');
          throw new ConnectError(`node id "${req.nodeId}" is not in namespace "${caller.namespace}" of the credential`, Code.PermissionDenied);
        }
      }
      const asked = durationMs(req.validity, opts.certTtlMs);
      const ttl = Math.max(1000, Math.min(asked, opts.certTtlMs));
      try {
        const cert = await ca.issue(req.csr, spiffeId, ttl);
        audit('issued', { ...who, serial: cert.serial, notAfter: new Date(cert.notAfterMs).toISOString() }, 'certificate issued');
        opts.onIssued?.(req.nodeId, spiffeId, cert.notAfterMs);
        return { certChain: cert.chain, trustBundle: [...ca.bundle], spiffeId, notAfter: timestampFromMs(cert.notAfterMs) };
      } catch (err) {
        if (!(err instanceof CsrError)) throw err;
        const other = /may only get/.test(err.message);
        audit(other ? 'denied' : 'invalid', { ...who, reason: err.message }, 'certificate refused');
        throw new ConnectError(err.message, other ? Code.PermissionDenied : Code.InvalidArgument);
      }
    },
  };
}

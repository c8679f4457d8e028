import { Code, ConnectError } from '@connectrpc/connect';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../../observability/logger.js';
import type { Peer } from '../auth.js';
import { callerOfSvid, type WorkloadAuthenticator, type WorkloadCaller } from './workload-auth.js';

export interface SidecarAuthOptions {
  readonly auth: WorkloadAuthenticator;
  /** The CA's trust domain: an SVID presented over mTLS must be of it. */
  readonly trustDomain: string;
  /** `--allow-unauthenticated-sidecars`: streams without a credential are served (local development). */
  readonly allowUnauthenticated: boolean;
  readonly logger: Logger;
  readonly registry: Registry;
}

/**
 * Who may open a config stream (issue 17 point 6). Over TLS, a sidecar that
 * holds a workload certificate presents it as its client certificate (the
 * SPIFFE ID names namespace and service account); otherwise it presents the
 * credential it gets its certificate with (`authorization: Bearer`,
 * projected service-account token or bootstrap token). The node id it then
 * claims (`POD.NAMESPACE`, as the injector sets it) must be in the
 * credential's namespace. Refusals are UNAUTHENTICATED (no or bad
 * credential) or PERMISSION_DENIED (another namespace's node), counted and
 * audited. With `allowUnauthenticated` a stream without a credential is
 * served as before (a credential that is presented is still checked when
 * some authenticator is configured).
 */
export class SidecarAuth {
  private readonly results: Counter;

  constructor(private readonly opts: SidecarAuthOptions) {
    this.results = new Counter({
      name: 'outrigger_control_stream_auth_total',
      help: 'Config streams by authentication result: ok, anonymous (allowed unauthenticated), unauthenticated, denied',
      labelNames: ['result'],
      registers: [opts.registry],
    });
    if (opts.allowUnauthenticated) opts.logger.warn('--allow-unauthenticated-sidecars: any client reaching the control port may open a config stream (local development only)');
  }

  /**
   * The caller of a stream: the SVID it presented over mTLS (verified by TLS
   * against the mesh bundle, see auth.ts peerOf), else the bearer token of
   * its request headers. Throws UNAUTHENTICATED. undefined: anonymous, allowed.
   */
  async authenticate(authorization: string | undefined, peer?: Peer): Promise<WorkloadCaller | undefined> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (peer?.workloadId !== undefined) {
      const v = callerOfSvid(peer.workloadId, this.opts.trustDomain);
      if (v.ok) return v.caller;
      this.refuse('unauthenticated', { reason: v.reason });
      throw new ConnectError(`workload certificate refused: ${v.reason}`, Code.Unauthenticated);
    }
    // A mesh certificate that is no usable SVID, with no token to fall back on (a token still works:
    // a sidecar whose certificate went bad must be able to reconnect and renew).
    if (peer?.workloadError !== undefined && !m) {
      this.refuse('unauthenticated', { reason: peer.workloadError });
      throw new ConnectError(`workload certificate refused: ${peer.workloadError}`, Code.Unauthenticated);
    }
    // An injected pod always presents its projected token; a development control plane
    // (--no-auth) that has no way to verify one serves it as it would serve no credential.
    if (!m || (this.opts.allowUnauthenticated && this.opts.auth.configured === false)) {
      if (this.opts.allowUnauthenticated) {
        this.results.inc({ result: 'anonymous' });
        return undefined;
      }
      this.refuse('unauthenticated', { reason: 'no credential' });
      throw new ConnectError('config streams need a workload credential: authorization: Bearer <service-account or bootstrap token>', Code.Unauthenticated);
    }
    const v = await this.opts.auth.authenticate(m[1]!);
    if (!v.ok) {
      this.refuse('unauthenticated', { reason: v.reason });
      throw new ConnectError(`workload credential refused: ${v.reason}`, Code.Unauthenticated);
    }
    return v.caller;
  }

  /** Checks the node id the stream's first request claims; throws PERMISSION_DENIED. */
  checkNode(caller: WorkloadCaller | undefined, nodeId: string | undefined): void {
    if (caller === undefined) return;
    const id = nodeId ?? '';
    const dot = id.lastIndexOf('.');
    const ns = dot < 0 ? '' : id.slice(dot + 1);
    if (ns !== caller.namespace) {
      this.refuse('denied', { nodeId: id, namespace: caller.namespace, serviceAccount: caller.serviceAccount, token: caller.tokenHash });
      throw new ConnectError(`node id "${id}" is not in namespace "${caller.namespace}" of the credential (node ids are POD.NAMESPACE)`, Code.PermissionDenied);
    }
    this.results.inc({ result: 'ok' });
    this.opts.logger.debug({ nodeId: id, serviceAccount: caller.serviceAccount, via: caller.via }, 'config stream authenticated');
  }

  private refuse(result: 'unauthenticated' | 'denied', fields: Record<string, unknown>): void {
    this.results.inc({ result });
    this.opts.logger.info({ audit: true, op: 'stream', result, ...fields }, 'config stream refused');
  }
}

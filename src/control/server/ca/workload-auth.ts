import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { nameError, parseSpiffeId } from '../../../core/spiffe.js';

/** Who a workload credential names: a Kubernetes namespace and service account. */
export interface WorkloadCaller {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** How it was established, for the audit log. */
  readonly via: 'bootstrap-token' | 'token-review' | 'svid';
  /** A short hash of the token (audit lines never carry tokens); '' for an SVID. */
  readonly tokenHash: string;
}

export type AuthVerdict = { ok: true; caller: WorkloadCaller } | { ok: false; reason: string };

/** Something that can tell who a bearer token belongs to. */
export interface WorkloadAuthenticator {
  authenticate(token: string): Promise<AuthVerdict>;
  /** false: nothing can verify a token (no token file, no TokenReview); see SidecarAuth. */
  readonly configured?: boolean;
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 12);
}

/**
 * `--workload-token-file`: one line per workload, `TOKEN NAMESPACE/SERVICEACCOUNT`
 * (blank lines and `#` comments ignored). Re-read when the file changes
 * (checked on each call by its stat: no watcher to miss an atomic rename).
 * Tokens are looked up by their SHA-256, so the lookup's timing does not
 * depend on how much of a guessed token is right.
 */
export class WorkloadTokenFile implements WorkloadAuthenticator {
  private byHash = new Map<string, { namespace: string; serviceAccount: string }>();
  private stamp = '';

  constructor(readonly path: string) {}

  /** Reads the file now; throws with the line number on a malformed line. */
  async load(): Promise<void> {
    const st = await stat(this.path);
    const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (stamp === this.stamp) return;
    const text = await readFile(this.path, 'utf8');
    const next = new Map<string, { namespace: string; serviceAccount: string }>();
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const m = /^(\S+)\s+([^/\s]+)\/(\S+)$/.exec(line);
      if (!m) throw new Error(`${this.path}:${i + 1}: expected "TOKEN NAMESPACE/SERVICEACCOUNT"`);
      const bad = nameError('namespace', m[2]!) ?? nameError('service account', m[3]!);
      if (bad) throw new Error(`${this.path}:${i + 1}: ${bad}`);
      next.set(createHash('sha256').update(m[1]!).digest('hex'), { namespace: m[2]!, serviceAccount: m[3]! });
    });
    this.byHash = next;
    this.stamp = stamp;
  }

  async authenticate(token: string): Promise<AuthVerdict> {
    try {
      await this.load();
    } catch (err) {
      // A broken edit keeps the last good table (it was logged by whoever reads the error); a missing file has none.
      if (this.stamp === '') return { ok: false, reason: `workload token file unreadable: ${(err as Error).message}` };
    }
    const hit = this.byHash.get(createHash('sha256').update(token).digest('hex'));
    if (!hit) return { ok: false, reason: 'unknown bootstrap token' };
    return { ok: true, caller: { ...hit, via: 'bootstrap-token', tokenHash: tokenHash(token) } };
  }
}

/** The part of @kubernetes/client-node's AuthenticationV1Api used here (a seam for the tests' API server). */
export interface TokenReviewApi {
  createTokenReview(param: { body: { apiVersion?: string; kind?: string; spec: { token: string; audiences?: string[] } } }): Promise<{
    status?: { authenticated?: boolean; audiences?: string[]; error?: string; user?: { username?: string } };
  }>;
}

/**
 * A Kubernetes service-account token, checked by the API server with a
 * TokenReview for audience `audience` ("outrigger": the projected token the
 * injector mounts, not the pod's default API token).
 */
export class TokenReviewAuthenticator implements WorkloadAuthenticator {
  constructor(
    private readonly api: TokenReviewApi,
    private readonly audience = 'outrigger',
  ) {}

  async authenticate(token: string): Promise<AuthVerdict> {
    let status;
    try {
      status = (await this.api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [this.audience] } } })).status;
    } catch (err) {
      return { ok: false, reason: `TokenReview failed: ${(err as Error).message}` };
    }
    if (!status?.authenticated) return { ok: false, reason: `token not authenticated${status?.error ? `: ${status.error}` : ''}` };
    // The API server answers with the audiences the token is valid for among those asked; none of ours: wrong audience.
    if (!status.audiences?.includes(this.audience)) return { ok: false, reason: `token is not for audience "${this.audience}"` };
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(status.user?.username ?? '');
    if (!m) return { ok: false, reason: `token is not a service account's (${status.user?.username ?? 'no user'})` };
    return { ok: true, caller: { namespace: m[1]!, serviceAccount: m[2]!, via: 'token-review', tokenHash: tokenHash(token) } };
  }
}

/** Tries each authenticator in order; the first that knows the token decides. */
export function anyOf(auths: readonly WorkloadAuthenticator[]): WorkloadAuthenticator {
  return {
    configured: auths.length > 0,
    async authenticate(token) {
      const reasons: string[] = [];
      for (const a of auths) {
        const v = await a.authenticate(token);
        if (v.ok) return v;
        reasons.push(v.reason);
      }
      return { ok: false, reason: reasons.join('; ') || 'no workload authentication configured' };
    },
  };
}

/**
 * The caller a verified workload certificate names (its SPIFFE ID, of the
 * CA's trust domain), or why it names none. TLS already checked the chain
 * against the mesh bundle (auth.ts peerOf).
 */
export function callerOfSvid(spiffeId: string, trustDomain: string): AuthVerdict {
  const w = parseSpiffeId(spiffeId);
  if (!w) return { ok: false, reason: `certificate identity "${spiffeId}" is not spiffe://TD/ns/NS/sa/SA` };
  if (w.trustDomain !== trustDomain) return { ok: false, reason: `certificate identity "${spiffeId}" is not of trust domain "${trustDomain}"` };
  return { ok: true, caller: { namespace: w.namespace, serviceAccount: w.serviceAccount, via: 'svid', tokenHash: '' } };
}

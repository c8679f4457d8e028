import type { V1EndpointSlice, V1Pod } from '@kubernetes/client-node';
import type { JsonObject } from '../../config/snapshot.js';
import { spiffeIdOf } from '../../core/spiffe.js';
import { SERVICE_NAME_LABEL } from '../kubernetes/kube-provider.js';

/**
 * The annotation the injector writes on every pod it injected (injector/
 * pod-types.ts ANNOTATIONS.status; not imported: discovery does not depend
 * on the injector). A pod with it runs a sidecar that can answer mesh mTLS.
 */
export const INJECTED_ANNOTATION = 'outrigger.io/status';

/** `--mesh-mtls`: generated clusters originate mesh mTLS to Services whose endpoints all run sidecars. */
export interface MeshTlsOptions {
  readonly trustDomain: string;
}

/**
 * The `tls` of a cluster generated for Service `ns/name` (issue 17 point 4):
 * mesh mTLS expecting the SPIFFE IDs of the service accounts its endpoint
 * pods run as (EndpointSlice targetRef → Pod → spec.serviceAccountName), as
 * Istio's auto-mTLS does. Only when every endpoint is a known, injected pod:
 * one endpoint without a sidecar (or not yet in the pod cache) keeps the
 * cluster plaintext, which a PERMISSIVE server sidecar also accepts — a
 * cluster is TLS or not as a whole. No endpoints: plaintext (nothing to ask).
 */
export function meshTlsOf(opts: MeshTlsOptions | undefined, ns: string, name: string, slices: readonly V1EndpointSlice[], pod: (ns: string, name: string) => V1Pod | undefined): { tls?: JsonObject } {
  if (!opts) return {};
  const accounts = new Set<string>();
  for (const s of slices) {
    if (s.metadata?.namespace !== ns || s.metadata?.labels?.[SERVICE_NAME_LABEL] !== name) continue;
    for (const e of s.endpoints ?? []) {
      const ref = e.targetRef;
      const p = ref?.kind === 'Pod' && ref.name ? pod(ref.namespace ?? ns, ref.name) : undefined;
      if (!p || p.metadata?.annotations?.[INJECTED_ANNOTATION] === undefined) return {};
      accounts.add(`${p.metadata?.namespace ?? ns}/${p.spec?.serviceAccountName || 'default'}`);
    }
  }
  if (accounts.size === 0) return {};
  const subjectAltNames = [...accounts].sort().map((a) => {
    const [namespace, serviceAccount] = a.split('/') as [string, string];
    return spiffeIdOf({ trustDomain: opts.trustDomain, namespace, serviceAccount });
  });
  return { tls: { mode: 'TLS_MODE_MESH', subjectAltNames } };
}

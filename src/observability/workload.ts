/**
 * Who this sidecar's pod is, for Istio's `source_*` / `destination_*` labels:
 * the injector sets POD_NAME and POD_NAMESPACE (downward API) and passes the
 * pod labels as `--node-labels-file`. Anything not known is `unknown`, as in
 * Istio.
 */
export interface WorkloadIdentity {
  readonly workload: string;
  readonly namespace: string;
  readonly app: string;
  readonly version: string;
}

export const UNKNOWN = 'unknown';

export const UNKNOWN_WORKLOAD: WorkloadIdentity = { workload: UNKNOWN, namespace: UNKNOWN, app: UNKNOWN, version: UNKNOWN };

/**
 * The workload is the pod's owner as Istio names it: a Deployment's pods are
 * `<deployment>-<pod-template-hash>-<suffix>`, so with the `pod-template-hash`
 * label the two generated segments are dropped; otherwise the pod name minus
 * a StatefulSet/DaemonSet style trailing segment is not guessed (the pod name
 * is used as it is).
 */
export function workloadIdentity(env: Record<string, string | undefined>, labels: Record<string, string> = {}): WorkloadIdentity {
  const pod = env.POD_NAME || '';
  const hash = labels['pod-template-hash'];
  let workload = pod || UNKNOWN;
  if (pod && hash) {
    const i = pod.lastIndexOf(`-${hash}-`);
    if (i > 0) workload = pod.slice(0, i);
  }
  return {
    workload,
    namespace: env.POD_NAMESPACE || UNKNOWN,
    app: labels['app.kubernetes.io/name'] ?? labels['app'] ?? UNKNOWN,
    version: labels['app.kubernetes.io/version'] ?? labels['version'] ?? UNKNOWN,
  };
}

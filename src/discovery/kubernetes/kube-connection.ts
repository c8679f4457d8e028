import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';

/** Where the in-cluster service account keeps its namespace. */
const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/**
 * The API server connection, by Kubernetes' own conventions (kubectl's): an
 * explicit `--kubeconfig` file, else `KUBECONFIG` (a list of files), else
 * ~/.kube/config, else the in-cluster service account.
 */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error('no Kubernetes cluster configured (--kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster)');
  return kc;
}

/** The namespace of the kubeconfig's current context; in a pod its own; else "default". */
export function defaultNamespace(kc: KubeConfig): string {
  const ctx = kc.getContextObject(kc.getCurrentContext());
  if (ctx?.namespace) return ctx.namespace;
  try {
    return readFileSync(SA_NAMESPACE_FILE, 'utf8').trim() || 'default';
  } catch {
    return 'default';
  }
}

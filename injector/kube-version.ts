import { readFile } from 'node:fs/promises';
import https from 'node:https';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * Asks the API server for its version (GET /version) with the pod's service
 * account, when running in a cluster. Undefined when not in a cluster or on any
 * failure: the injector then treats the version as unknown (no native sidecars
 * in `auto` mode) and says so in its log.
 */
export async function detectKubernetesVersion(
  env: NodeJS.ProcessEnv = process.env,
  saDir = SA_DIR,
  timeoutMs = 3000,
): Promise<string | undefined> {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) return undefined;
  let token: string, ca: Buffer;
  try {
    [token, ca] = await Promise.all([readFile(`${saDir}/token`, 'utf8'), readFile(`${saDir}/ca.crt`)]);
  } catch {
    return undefined;
  }
  return new Promise((resolve) => {
    const req = https.get(
      { host, port: Number(port), path: '/version', ca, headers: { authorization: `Bearer ${token.trim()}` }, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          try {
            const v = JSON.parse(body) as { major?: string; minor?: string; gitVersion?: string };
            resolve(v.gitVersion ?? (v.major && v.minor ? `${v.major}.${v.minor}` : undefined));
          } catch {
            resolve(undefined);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(undefined));
  });
}

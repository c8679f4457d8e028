import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { makeTestPki } from './injector-pki.js';

/** A service-account token the fake API server knows: whose it is and which audiences it was issued for. */
export interface KnownToken {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly audiences: readonly string[];
}

export interface FakeTokenReviewApi {
  readonly kubeconfig: string;
  /** The TokenReview bodies received, in order. */
  readonly reviews: { token: string; audiences: string[] }[];
  close(): Promise<void>;
}

const API_TOKEN = 'control-plane-sa-token';

/**
 * The Kubernetes API's TokenReview as the API server answers it
 * (authentication.k8s.io/v1, docs "Authenticating: webhook token
 * authentication" and the TokenReview API reference): POST
 * /apis/authentication.k8s.io/v1/tokenreviews with the caller's own bearer
 * token; the answer echoes the spec with a status: `authenticated`, `user`
 * (`system:serviceaccount:NS:SA`), and `audiences` — the intersection of the
 * requested audiences and the token's; a token valid for none of them is
 * not authenticated (`error`). HTTPS with a throw-away CA in the kubeconfig.
 */
export async function startFakeTokenReviewApi(dir: string, tokens: Record<string, KnownToken>): Promise<FakeTokenReviewApi> {
  const pki = makeTestPki();
  const serving = pki.issue('localhost', 'apiserver', '127.0.0.1');
  const reviews: { token: string; audiences: string[] }[] = [];
  const server: Server = createServer({ cert: readFileSync(serving.certFile), key: readFileSync(serving.keyFile) }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const send = (status: number, obj: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      if (req.headers.authorization !== `Bearer ${API_TOKEN}`) return send(401, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Unauthorized', code: 401 });
      if (req.method !== 'POST' || req.url?.split('?')[0] !== '/apis/authentication.k8s.io/v1/tokenreviews') {
        return send(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
      }
      const review = JSON.parse(body) as { spec: { token: string; audiences?: string[] } };
      const asked = review.spec.audiences ?? [];
      reviews.push({ token: review.spec.token, audiences: asked });
      const known = tokens[review.spec.token];
      const audiences = known ? (asked.length ? asked.filter((a) => known.audiences.includes(a)) : [...known.audiences]) : [];
      const status =
        known && audiences.length > 0
          ? { authenticated: true, audiences, user: { username: `system:serviceaccount:${known.namespace}:${known.serviceAccount}`, uid: 'u', groups: ['system:serviceaccounts'] } }
          : { authenticated: false, error: known ? 'token audiences do not match' : 'invalid bearer token' };
      send(201, { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec: review.spec, status });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeconfig = join(dir, 'kubeconfig-tokenreview');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: url, 'certificate-authority-data': Buffer.from(pki.caCert).toString('base64') } }],
      users: [{ name: 'fake', user: { token: API_TOKEN } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake' } }],
      'current-context': 'fake',
    }),
    { mode: 0o600 },
  );
  return {
    kubeconfig,
    reviews,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          pki.cleanup();
          resolve();
        });
      }),
  };
}

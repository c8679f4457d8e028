import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestPki, type TestPki } from './injector-pki.js';

/** One request the fake API server received. */
export interface KubeRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: URLSearchParams;
  /** How the server answered. */
  status: number;
}

export interface SecretObject {
  apiVersion?: 'v1';
  kind?: 'Secret';
  metadata: { name: string; namespace: string; labels?: Record<string, string>; [k: string]: unknown };
  type?: string;
  data?: Record<string, string>;
}

export interface FakeKubeApi {
  /** https://127.0.0.1:PORT */
  readonly url: string;
  /** A kubeconfig for the server (CA data, bearer token, default namespace). */
  readonly kubeconfig: string;
  /** Every request, in order. */
  readonly requests: KubeRequest[];
  /** Stores a Secret as the API server would return it (adds uid, resourceVersion, ...). */
  putSecret(s: SecretObject): void;
  deleteSecret(namespace: string, name: string): void;
  /** Answers reads of one Secret with this error status (403, 500, ...) until cleared with null. */
  failSecret(namespace: string, name: string, code: number | null): void;
  /** GETs of one named Secret received so far. */
  secretGets(namespace: string, name: string): number;
  /** Requests answered 404 because the server has no route for them (not a missing object). */
  unrouted(): KubeRequest[];
  close(): Promise<void>;
}

const TOKEN = 'fake-kube-api-token';

/**
 * A minimal Kubernetes API server for `helm template --dry-run=server`: just
 * enough for the chart's `lookup` calls, answered like the real one would.
 *
 * - HTTPS on 127.0.0.1 (a throw-away openssl CA, pinned in the kubeconfig) and
 *   a bearer token: anything else is 401, so helm demonstrably used the kubeconfig.
 * - `GET /version`, `/api`, `/apis` (no groups) and `/api/v1` (legacy discovery:
 *   the resource list helm's lookup needs to map `v1 Secret` to `secrets`).
 *   Aggregated discovery is never answered with its content type, so client-go
 *   falls back to the legacy documents.
 * - `GET /api/v1/namespaces/NS/secrets/NAME` (the object, or a NotFound Status)
 *   and `GET /api/v1/namespaces/NS/secrets` (a SecretList, `labelSelector`
 *   equality terms only), which is what release storage would read.
 * - Everything else: 404 Status (recorded, see `unrouted()`); writes: 405.
 */
export async function startFakeKubeApi(dir: string): Promise<FakeKubeApi> {
  const pki: TestPki = makeTestPki();
  const serving = pki.issue('localhost', 'apiserver', '127.0.0.1');
  const secrets = new Map<string, SecretObject>();
  const requests: KubeRequest[] = [];
  const unrouted = new Set<KubeRequest>();
  const failing = new Map<string, number>();
  let resourceVersion = 1000;

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const statusBody = (code: number, reason: string, message: string, details?: object) => ({
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code, ...(details ? { details } : {}),
  });

  /** Answers one request; returns its status, or null when no route matched (404). */
  const handle = (req: IncomingMessage, res: ServerResponse): number | null => {
    const u = new URL(req.url ?? '/', 'https://127.0.0.1');
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      send(res, 401, statusBody(401, 'Unauthorized', 'Unauthorized'));
      return 401;
    }
    if (req.method !== 'GET') {
      send(res, 405, statusBody(405, 'MethodNotAllowed', `${req.method} is not allowed on the fake API server`));
      return 405;
    }
    const p = u.pathname.replace(/\/+$/, '');
    if (p === '/version') {
      send(res, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0', goVersion: 'go1.22.0', platform: 'linux/amd64' });
      return 200;
    }
    if (p === '/api') {
      send(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] });
      return 200;
    }
    if (p === '/apis') {
      send(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
      return 200;
    }
    if (p === '/api/v1') {
      send(res, 200, {
        kind: 'APIResourceList', apiVersion: 'v1', groupVersion: 'v1',
        resources: [{ name: 'secrets', singularName: 'secret', namespaced: true, kind: 'Secret', verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'] }],
      });
      return 200;
    }
    const one = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/.exec(p);
    if (one) {
      const [, ns, name] = one as unknown as [string, string, string];
      const code = failing.get(`${ns}/${name}`);
      if (code) {
        const reason = code === 403 ? 'Forbidden' : code === 401 ? 'Unauthorized' : 'InternalError';
        send(res, code, statusBody(code, reason, `secrets "${name}" is ${reason.toLowerCase()} (fake API server)`, { name, kind: 'secrets' }));
        return code;
      }
      const s = secrets.get(`${ns}/${name}`);
      if (!s) {
        send(res, 404, statusBody(404, 'NotFound', `secrets "${name}" not found`, { name, kind: 'secrets' }));
        return 404;
      }
      send(res, 200, s);
      return 200;
    }
    const list = /^\/api\/v1\/namespaces\/([^/]+)\/secrets$/.exec(p);
    if (list) {
      const ns = list[1]!;
      const terms = (u.searchParams.get('labelSelector') ?? '').split(',').filter(Boolean).map((t) => t.split('=').filter(Boolean));
      const items = [...secrets.values()].filter(
        (s) => s.metadata.namespace === ns && terms.every(([k, v]) => s.metadata.labels?.[k!] === v),
      );
      send(res, 200, { kind: 'SecretList', apiVersion: 'v1', metadata: { resourceVersion: String(resourceVersion) }, items });
      return 200;
    }
    send(res, 404, statusBody(404, 'NotFound', 'the server could not find the requested resource'));
    return null;
  };

  const server: Server = createServer({ cert: readFileSync(serving.certFile), key: readFileSync(serving.keyFile) }, (req, res) => {
    req.resume();
    req.on('end', () => {
      const status = handle(req, res);
      const u = new URL(req.url ?? '/', 'https://127.0.0.1');
      const r: KubeRequest = { method: req.method ?? '', path: u.pathname, query: u.searchParams, status: status ?? 404 };
      requests.push(r);
      if (status === null) unrouted.add(r);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: url, 'certificate-authority-data': Buffer.from(pki.caCert).toString('base64') } }],
      users: [{ name: 'fake', user: { token: TOKEN } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake', namespace: 'default' } }],
      'current-context': 'fake',
    }),
    { mode: 0o600 },
  );

  return {
    url,
    kubeconfig,
    requests,
    putSecret(s) {
      const stored: SecretObject = structuredClone(s);
      stored.apiVersion = 'v1';
      stored.kind = 'Secret';
      stored.metadata = { uid: randomUUID(), resourceVersion: String(++resourceVersion), creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), ...stored.metadata };
      secrets.set(`${s.metadata.namespace}/${s.metadata.name}`, stored);
    },
    deleteSecret: (ns, name) => void secrets.delete(`${ns}/${name}`),
    failSecret: (ns, name, code) => void (code === null ? failing.delete(`${ns}/${name}`) : failing.set(`${ns}/${name}`, code)),
    secretGets: (ns, name) => requests.filter((r) => r.method === 'GET' && r.path === `/api/v1/namespaces/${ns}/secrets/${name}`).length,
    unrouted: () => [...unrouted],
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

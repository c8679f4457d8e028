import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { makeTestPki } from './injector-pki.js';
import { join } from 'node:path';

/** The resources this server serves: Kubernetes' plural names and their API group paths. */
const RESOURCES = {
  services: { prefix: '/api/v1', kind: 'Service', listKind: 'ServiceList', apiVersion: 'v1' },
  pods: { prefix: '/api/v1', kind: 'Pod', listKind: 'PodList', apiVersion: 'v1' },
  endpointslices: { prefix: '/apis/discovery.k8s.io/v1', kind: 'EndpointSlice', listKind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1' },
  /** Cluster-scoped: stored with namespace "". */
  namespaces: { prefix: '/api/v1', kind: 'Namespace', listKind: 'NamespaceList', apiVersion: 'v1' },
} as const;
export type KubeResource = keyof typeof RESOURCES;

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; labels?: Record<string, string>; resourceVersion?: string; uid?: string; [k: string]: unknown };
  [k: string]: unknown;
}

interface Event {
  rv: number;
  resource: KubeResource;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
}

interface Watcher {
  resource: KubeResource;
  namespace: string | undefined;
  labels: [string, string][];
  res: ServerResponse;
  bookmarks: boolean;
}

export interface KubeApiServer {
  readonly url: string;
  readonly port: number;
  /** A kubeconfig file (written in `dir`) for this server, with its bearer token and `namespace` as the context's. */
  readonly kubeconfig: string;
  /** Creates or replaces an object (ADDED or MODIFIED to the watchers). */
  put(resource: KubeResource, obj: KubeObject): void;
  delete(resource: KubeResource, namespace: string, name: string): void;
  /** Forgets the event history up to now: a watch resuming from an older resourceVersion gets 410 Gone. */
  compact(): void;
  /** Ends every open watch with 410 Gone (an ERROR event), as an API server whose watch cache moved on does. */
  expireWatches(): void;
  /** Sends a BOOKMARK to watches that asked for them. */
  bookmark(): void;
  /** Stops answering: the listening socket closes and every connection is cut. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  /** Open watch connections now, per resource. */
  watchers(resource?: KubeResource): number;
  /** Requests received, "GET /path?query". */
  readonly requests: string[];
  close(): Promise<void>;
}

const TOKEN = 'kube-api-test-token';

/**
 * A Kubernetes API server for informers: list and watch of Services, Pods
 * and EndpointSlices (namespaced and across namespaces), with the real
 * protocol's semantics, from the API concepts docs:
 * - every write gets the next resourceVersion; a list answers with the current one;
 * - `?watch=true&resourceVersion=N` streams (chunked, one JSON event per line)
 *   every event after N, then new ones as they happen; `resourceVersion` unset
 *   or "0" starts with ADDED for every current object;
 * - a resourceVersion older than the compacted history is a 410 Gone ERROR
 *   event (the watch then ends), so the client relists;
 * - BOOKMARK events when `allowWatchBookmarks=true`; `timeoutSeconds` ends the watch;
 * - `labelSelector` equality terms (k=v, k==v, k!=v);
 * - HTTPS (a throw-away CA pinned in the kubeconfig) and a bearer token (401 otherwise).
 * Watch responses flush their headers at once: the client waits for them.
 */
export async function startKubeApiServer(dir: string, namespace = 'default'): Promise<KubeApiServer> {
  const objects = new Map<string, KubeObject>(); // resource/ns/name
  const history: Event[] = [];
  let rv = 100;
  let compactedAt = rv;
  const watchers = new Set<Watcher>();
  const sockets = new Set<Socket>();
  const requests: string[] = [];

  const key = (r: KubeResource, ns: string, name: string) => `${r}/${ns}/${name}`;
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const status = (code: number, reason: string, message: string) => ({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
  const matches = (w: { resource: KubeResource; namespace: string | undefined; labels: [string, string][] }, r: KubeResource, o: KubeObject) =>
    w.resource === r && (w.namespace === undefined || o.metadata.namespace === w.namespace) && selects(w.labels, o);

  function selects(terms: [string, string][], o: KubeObject): boolean {
    return terms.every(([k, v]) => (k.endsWith('!') ? o.metadata.labels?.[k.slice(0, -1)] !== v : o.metadata.labels?.[k] === v));
  }

  function parseSelector(s: string | null): [string, string][] | undefined {
    if (!s) return [];
    const out: [string, string][] = [];
    for (const term of s.split(',')) {
      const m = /^([^!=]+)(==|=|!=)(.*)$/.exec(term.trim());
      if (!m) return undefined;
      out.push([m[2] === '!=' ? `${m[1]}!` : m[1]!, m[3]!]);
    }
    return out;
  }

  function emit(e: Event): void {
    history.push(e);
    for (const w of watchers) if (matches(w, e.resource, e.object)) writeEvent(w.res, e.type, e.object);
  }

  function writeEvent(res: ServerResponse, type: string, object: unknown): void {
    if (res.writableEnded) return;
    res.write(`${JSON.stringify({ type, object })}\n`);
  }

  function withMeta(r: KubeResource, o: KubeObject, version: number): KubeObject {
    const d = RESOURCES[r];
    return { ...o, apiVersion: d.apiVersion, kind: d.kind, metadata: { uid: o.metadata.uid ?? randomUUID(), ...o.metadata, resourceVersion: String(version) } };
  }

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    requests.push(`${req.method} ${u.pathname}${u.search}`);
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return send(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
    if (req.method !== 'GET') return send(res, 405, status(405, 'MethodNotAllowed', 'read-only test server'));
    const m = /^(\/api\/v1|\/apis\/discovery\.k8s\.io\/v1)(?:\/namespaces\/([^/]+))?\/(services|pods|endpointslices|namespaces)$/.exec(u.pathname);
    if (!m || RESOURCES[m[3] as KubeResource].prefix !== m[1]) return send(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
    const resource = m[3] as KubeResource;
    const ns = m[2];
    const labels = parseSelector(u.searchParams.get('labelSelector'));
    if (!labels) return send(res, 400, status(400, 'BadRequest', `unable to parse requirement: ${u.searchParams.get('labelSelector')}`));
    const scope = { resource, namespace: ns, labels };
    if (u.searchParams.get('watch') !== 'true' && u.searchParams.get('watch') !== '1') {
      const items = [...objects.entries()].filter(([k, o]) => k.startsWith(`${resource}/`) && matches(scope, resource, o)).map(([, o]) => o);
      return send(res, 200, { kind: RESOURCES[resource].listKind, apiVersion: RESOURCES[resource].apiVersion, metadata: { resourceVersion: String(rv) }, items });
    }
    const from = u.searchParams.get('resourceVersion');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (from && from !== '0' && Number(from) < compactedAt) {
      writeEvent(res, 'ERROR', status(410, 'Expired', `too old resource version: ${from} (${compactedAt})`));
      return void res.end();
    }
    if (!from || from === '0') {
      for (const [k, o] of objects) if (k.startsWith(`${resource}/`) && matches(scope, resource, o)) writeEvent(res, 'ADDED', o);
    } else {
      for (const e of history) if (e.rv > Number(from) && matches(scope, e.resource, e.object)) writeEvent(res, e.type, e.object);
    }
    const w: Watcher = { ...scope, res, bookmarks: u.searchParams.get('allowWatchBookmarks') === 'true' };
    watchers.add(w);
    const timeout = Number(u.searchParams.get('timeoutSeconds') ?? 0);
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    res.on('close', () => {
      watchers.delete(w);
      if (timer) clearTimeout(timer);
    });
  };

  const pki = makeTestPki();
  const serving = pki.issue('localhost', 'apiserver', '127.0.0.1');
  const server: Server = createServer({ cert: readFileSync(serving.certFile), key: readFileSync(serving.keyFile) }, handle);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const url = `https://127.0.0.1:${port}`;
  const kubeconfig = join(dir, 'kubeconfig.yaml');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: test\n  cluster:\n    server: ${url}\n    certificate-authority-data: ${Buffer.from(pki.caCert).toString('base64')}`,
      'users:',
      `- name: test\n  user:\n    token: ${TOKEN}`,
      'contexts:',
      `- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: ${namespace}`,
      'current-context: test',
      '',
    ].join('\n'),
  );

  return {
    url,
    port,
    kubeconfig,
    requests,
    put(resource, obj) {
      const k = key(resource, obj.metadata.namespace, obj.metadata.name);
      const existed = objects.has(k);
      const o = withMeta(resource, obj, ++rv);
      objects.set(k, o);
      emit({ rv, resource, type: existed ? 'MODIFIED' : 'ADDED', object: o });
    },
    delete(resource, ns, name) {
      const k = key(resource, ns, name);
      const o = objects.get(k);
      if (!o) return;
      objects.delete(k);
      emit({ rv: ++rv, resource, type: 'DELETED', object: withMeta(resource, o, rv) });
    },
    compact() {
      compactedAt = rv;
      history.length = 0;
    },
    expireWatches() {
      for (const w of [...watchers]) {
        watchers.delete(w);
        writeEvent(w.res, 'ERROR', status(410, 'Expired', 'too old resource version'));
        w.res.end();
      }
    },
    bookmark() {
      for (const w of watchers) if (w.bookmarks) writeEvent(w.res, 'BOOKMARK', { kind: RESOURCES[w.resource].kind, apiVersion: RESOURCES[w.resource].apiVersion, metadata: { resourceVersion: String(rv) } });
    },
    async down() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    up: () =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => resolve());
      }),
    watchers: (resource) => [...watchers].filter((w) => !resource || w.resource === resource).length,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      pki.cleanup();
    },
  };
}

/** An EndpointSlice of `service` (kubernetes.io/service-name label), one port, these endpoints. */
export function endpointSlice(
  namespace: string,
  name: string,
  service: string,
  ports: { name?: string; port: number; appProtocol?: string }[],
  endpoints: { ip: string; ready?: boolean; serving?: boolean; terminating?: boolean; zone?: string; pod?: string }[],
): KubeObject {
  return {
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType: 'IPv4',
    ports: ports.map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), port: p.port, protocol: 'TCP', ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) })),
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
      ...(e.zone ? { zone: e.zone } : {}),
      ...(e.pod ? { targetRef: { kind: 'Pod', namespace, name: e.pod } } : {}),
    })),
  };
}

/** A ClusterIP Service with these ports. */
export function service(namespace: string, name: string, ports: { name?: string; port: number; targetPort?: number | string; appProtocol?: string }[], clusterIP = '10.96.0.10'): KubeObject {
  return {
    metadata: { name, namespace },
    spec: {
      type: 'ClusterIP',
      clusterIP,
      clusterIPs: [clusterIP],
      ports: ports.map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), port: p.port, targetPort: p.targetPort ?? p.port, protocol: 'TCP', ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) })),
    },
  };
}

export function pod(namespace: string, name: string, ip: string, labels: Record<string, string>): KubeObject {
  return { metadata: { name, namespace, labels }, spec: { containers: [{ name: 'app', image: 'app' }] }, status: { phase: 'Running', podIP: ip } };
}

import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listener, prefixRoute, routes, type Doc } from '../../support/config-docs.js';
import { endpointSlice, pod, service, startKubeApiServer, type KubeApiServer } from '../../support/kube-api-server.js';
import { startNamedBackend, Traffic, type NamedBackend } from '../../support/discovery-traffic.js';
import { backendOf } from '../../support/backend-of.js';
import { startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { waitFor } from '../../support/wait.js';
import { metricValue } from '../../support/prom-text.js';

function kubeCluster(name: string, kubernetes: Record<string, unknown>): Doc {
  return { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name }, spec: { type: 'DISCOVERY_TYPE_KUBERNETES', protocol: 'UPSTREAM_PROTOCOL_HTTP1', kubernetes } };
}

describe('Discovery: Kubernetes clusters from EndpointSlices (client-node informers against a list/watch API server)', function () {
  this.timeout(30_000);
  let dir: string;
  let api: KubeApiServer;
  let a: NamedBackend;
  let b: NamedBackend;
  let sc: TestSidecar | undefined;

  const slice = (eps: Parameters<typeof endpointSlice>[4], name = 'cart-abc') => endpointSlice('shop', name, 'cart', [{ name: 'http', port: a.port }], eps);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kube-disc-'));
    api = await startKubeApiServer(dir, 'shop');
    a = await startNamedBackend('a', '127.0.0.2');
    b = await startNamedBackend('b', '127.0.0.3', a.port);
    api.put('services', service('shop', 'cart', [{ name: 'http', port: 80, targetPort: 'http' }]));
    api.put('pods', pod('shop', 'cart-a', '127.0.0.2', { app: 'cart', version: 'v1' }));
    api.put('pods', pod('shop', 'cart-b', '127.0.0.3', { app: 'cart', version: 'v2' }));
  });

  afterEach(async () => {
    await sc?.close();
    sc = undefined;
    await Promise.all([a.close(), b.close(), api.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  async function sidecarFor(port: unknown): Promise<TestSidecar> {
    return startTestSidecar([listener('main'), routes('main', [prefixRoute('/', 'cart')]), kubeCluster('cart', { namespace: 'shop', service: 'cart', port })], {
      discovery: { kubeconfig: api.kubeconfig },
    });
  }

  it('follows EndpointSlice changes: ready endpoints take traffic, not-ready ones stop, with zero failed requests', async () => {
    api.put('endpointslices', slice([{ ip: '127.0.0.2', pod: 'cart-a', zone: 'zone-a' }]));
    sc = await sidecarFor(80);
    const port = sc.port();
    await waitFor(async () => (await backendOf(port)) === 'a', 'traffic to the first endpoint');

    const t = new Traffic(port);
    try {
      api.put('endpointslices', slice([{ ip: '127.0.0.2', pod: 'cart-a', zone: 'zone-a' }, { ip: '127.0.0.3', pod: 'cart-b', zone: 'zone-b' }]));
      const addedAt = Date.now();
      await waitFor(() => t.countsSince(0).b !== undefined, 'the added endpoint takes traffic', 5000);
      expect(Date.now() - addedAt).to.be.below(1000);
      // a is terminating but still serving: DRAINING while b is ready, so no new requests.
      api.put('endpointslices', slice([{ ip: '127.0.0.2', pod: 'cart-a', ready: false, serving: true, terminating: true }, { ip: '127.0.0.3', pod: 'cart-b', zone: 'zone-b' }]));
      const removedAt = Date.now();
      await waitFor(() => t.lastAre('b', 20), 'the terminating endpoint stops taking traffic', 5000);
      expect(Date.now() - removedAt).to.be.below(1500);
    } finally {
      await t.stop();
    }
    expect(t.failures).to.deep.equal([]);
    const cla = sc.sidecar.store.current()!.documents.find((d) => d.kind === 'ClusterLoadAssignment' && d.metadata.name === 'cart')!;
    expect(cla.spec.endpoints).to.deep.equal([
      { address: { host: '127.0.0.2', port: a.port }, healthStatus: 'HEALTH_STATUS_DRAINING', metadata: { app: 'cart', version: 'v1' }, source: 'kubernetes:shop/cart:80' },
      { address: { host: '127.0.0.3', port: a.port }, locality: { zone: 'zone-b' }, healthStatus: 'HEALTH_STATUS_HEALTHY', metadata: { app: 'cart', version: 'v2' }, source: 'kubernetes:shop/cart:80' },
    ]);

    // Not ready at all: out. The slice deleted: no endpoints (503 no_healthy_upstream), then back.
    api.put('endpointslices', slice([{ ip: '127.0.0.3', pod: 'cart-b', ready: false, serving: false }]));
    await waitFor(async () => (await backendOf(port)) === 'status 503', 'no ready endpoint');
    api.put('endpointslices', slice([{ ip: '127.0.0.2', pod: 'cart-a' }]));
    await waitFor(async () => (await backendOf(port)) === 'a', 'ready again');
  });

  it('serves terminating endpoints when nothing else is, and picks the Service port by name', async () => {
    api.put('endpointslices', slice([{ ip: '127.0.0.3', ready: false, serving: true, terminating: true }]));
    sc = await sidecarFor('http');
    await waitFor(async () => (await backendOf(sc!.port())) === 'b', 'the only (terminating) endpoint serves');
  });

  it('keeps the last endpoints while the API server is down, reconnects (backoff ≤ 5 s) and catches up; a 410 Gone relists', async () => {
    api.put('endpointslices', slice([{ ip: '127.0.0.2', pod: 'cart-a' }]));
    sc = await sidecarFor(80);
    const port = sc.port();
    await waitFor(async () => (await backendOf(port)) === 'a', 'first endpoint');
    await waitFor(() => api.watchers() === 3, 'three watches open');

    await api.down();
    const errors = async () => metricValue(await sc!.metrics(), 'outrigger_discovery_errors_total', { provider: 'kubernetes' }) ?? 0;
    await waitFor(async () => (await errors()) > 0, 'the failure counted', 8000);
    const t = new Traffic(port, '/x', 30);
    await t.stop();
    expect(t.failures).to.deep.equal([]);
    expect(new Set(t.answers)).to.deep.equal(new Set(['a']));

    // Changed while down; the history is compacted too, so the resumed watch gets 410 and relists.
    api.put('endpointslices', slice([{ ip: '127.0.0.3', pod: 'cart-b' }]));
    api.compact();
    const seen = api.requests.length;
    await api.up();
    const upAt = Date.now();
    await waitFor(async () => (await backendOf(port)) === 'b', 'caught up after the API server came back', 10_000);
    expect(Date.now() - upAt).to.be.below(7000); // backoff capped at 5 s (+ jitter-free half) and one relist
    // The resumed watch got 410 Gone and the informer listed again.
    expect(api.requests.slice(seen)).to.include('GET /apis/discovery.k8s.io/v1/namespaces/shop/endpointslices');

    // A watch the server expires with 410: relist, and later changes still arrive.
    await waitFor(() => api.watchers('endpointslices') === 1, 'watch reopened');
    api.expireWatches();
    api.put('endpointslices', slice([{ ip: '127.0.0.2', pod: 'cart-a' }]));
    await waitFor(async () => (await backendOf(port)) === 'a', 'after the 410');
    const warned = sc.logs.filter((l) => l.msg === 'discovery source failing; keeping the last good endpoints' && l.provider === 'kubernetes');
    expect(warned.length, 'one warning per state change').to.equal(1);
  });

  it('refuses invalid Kubernetes discovery config with the field path', async () => {
    const { buildSnapshot } = await import('../../../src/config/loader.js');
    const docs = [
      listener('main'),
      routes('main', [prefixRoute('/', 'x'), prefixRoute('/y', 'y')]),
      kubeCluster('x', { namespace: 'shop' }),
      kubeCluster('y', { service: 'Cart_1', port: 70000 }),
    ];
    const r = buildSnapshot(docs.map((value, index) => ({ value, source: { index } })), { allowEphemeralPorts: true });
    const errs = r.ok ? [] : r.errors.map((e) => `${e.document} ${e.path}`);
    expect(errs).to.include.members(['Cluster/x spec.kubernetes.service', 'Cluster/y spec.kubernetes.service', 'Cluster/y spec.kubernetes.port']);
  });
});

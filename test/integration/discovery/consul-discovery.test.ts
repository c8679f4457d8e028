import { expect } from 'chai';
import { listener, prefixRoute, routes, type Doc } from '../../support/config-docs.js';
import { startConsulServer, type ConsulServer } from '../../support/consul-server.js';
import { startNamedBackend, Traffic, type NamedBackend } from '../../support/discovery-traffic.js';
import { backendOf } from '../../support/backend-of.js';
import { startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { waitFor } from '../../support/wait.js';
import { metricValue } from '../../support/prom-text.js';

function consulCluster(name: string, consul: Record<string, unknown>): Doc {
  return { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name }, spec: { type: 'DISCOVERY_TYPE_CONSUL', protocol: 'UPSTREAM_PROTOCOL_HTTP1', consul } };
}

describe('Discovery: Consul clusters (health API, blocking queries) against a Consul HTTP API server', function () {
  this.timeout(30_000);
  let consul: ConsulServer;
  let a: NamedBackend;
  let b: NamedBackend;
  let sc: TestSidecar | undefined;

  const inst = (node: string, id: string, be: NamedBackend, extra: Record<string, unknown> = {}) => ({ node, nodeAddress: be.host, id, service: 'cart', port: be.port, ...extra });

  beforeEach(async () => {
    consul = await startConsulServer({ token: 'acl-secret' });
    a = await startNamedBackend('a', '127.0.0.2');
    b = await startNamedBackend('b', '127.0.0.3');
  });

  afterEach(async () => {
    await sc?.close();
    sc = undefined;
    await Promise.all([a.close(), b.close(), consul.close()]);
  });

  async function sidecarFor(spec: Record<string, unknown>, waitMs = 30_000): Promise<TestSidecar> {
    return startTestSidecar([listener('main'), routes('main', [prefixRoute('/', 'cart')]), consulCluster('cart', spec)], {
      // CONSUL_HTTP_ADDR / CONSUL_HTTP_TOKEN, Consul's own variables.
      discovery: { env: { CONSUL_HTTP_ADDR: `127.0.0.1:${consul.port}`, CONSUL_HTTP_TOKEN: 'acl-secret' }, consulWaitMs: waitMs, consulTimeoutSlackMs: 500 },
    });
  }

  it('follows registrations, deregistrations and failing checks with zero failed requests', async () => {
    consul.register(inst('node-a', 'cart-a', a, { tags: ['http', 'version=v1'], meta: { owner: 'shop' } }));
    sc = await sidecarFor({ service: 'cart' });
    const port = sc.port();
    await waitFor(async () => (await backendOf(port)) === 'a', 'first instance');
    // The watch blocks on the index (a long poll), it does not poll.
    await waitFor(() => consul.parked() === 1, 'a blocking query parked');
    expect(consul.healthQueries.at(-1)).to.match(/[?&]index=\d+/).and.match(/[?&]wait=30s/).and.match(/passing=true/);

    const t = new Traffic(port);
    try {
      consul.register(inst('node-b', 'cart-b', b, { address: '127.0.0.3', tags: ['http', 'version=v2'] }));
      const at = Date.now();
      await waitFor(() => t.countsSince(0).b !== undefined, 'the registered instance takes traffic', 5000);
      expect(Date.now() - at).to.be.below(1000);
      consul.deregister('node-a', 'cart-a');
      const gone = Date.now();
      await waitFor(() => t.lastAre('b', 20), 'the deregistered instance stops taking traffic', 5000);
      expect(Date.now() - gone).to.be.below(1000);
    } finally {
      await t.stop();
    }
    expect(t.failures).to.deep.equal([]);
    const cla = sc.sidecar.store.current()!.documents.find((d) => d.kind === 'ClusterLoadAssignment' && d.metadata.name === 'cart')!;
    expect(cla.spec.endpoints).to.deep.equal([
      { address: { host: '127.0.0.3', port: b.port }, locality: { region: 'dc1' }, healthStatus: 'HEALTH_STATUS_HEALTHY', metadata: { http: '', version: 'v2' }, source: 'consul:cart' },
    ]);

    // A failing check takes it out (onlyPassing, the default); passing again brings it back.
    consul.setStatus('node-b', 'cart-b', 'critical');
    await waitFor(async () => (await backendOf(port)) === 'status 503', 'critical instance out');
    consul.setStatus('node-b', 'cart-b', 'passing');
    await waitFor(async () => (await backendOf(port)) === 'b', 'passing again');
  });

  it('filters by tags and, without onlyPassing, keeps critical instances as UNHEALTHY', async () => {
    consul.register(inst('node-a', 'cart-a', a, { tags: ['v1'] }));
    consul.register(inst('node-b', 'cart-b', b, { tags: ['v2', 'canary'], status: 'critical' }));
    sc = await sidecarFor({ service: 'cart', tags: ['v2'], onlyPassing: false });
    await waitFor(() => sc!.sidecar.store.current()!.loadAssignments.get('cart') !== undefined, 'assignment');
    const cla = sc.sidecar.store.current()!.documents.find((d) => d.kind === 'ClusterLoadAssignment')!;
    expect(cla.spec.endpoints).to.deep.equal([
      { address: { host: '127.0.0.3', port: b.port }, locality: { region: 'dc1' }, healthStatus: 'HEALTH_STATUS_UNHEALTHY', metadata: { v2: '', canary: '' }, source: 'consul:cart[v2]' },
    ]);
  });

  it('keeps the last instances when the agent hangs or is down, counts it, backs off and recovers', async () => {
    consul.register(inst('node-a', 'cart-a', a));
    sc = await sidecarFor({ service: 'cart' }, 300);
    const port = sc.port();
    await waitFor(async () => (await backendOf(port)) === 'a', 'first instance');
    const errors = async () => metricValue(await sc!.metrics(), 'outrigger_discovery_errors_total', { provider: 'consul' }) ?? 0;

    consul.stall(true); // the agent reads requests and never answers: each query times out
    await waitFor(async () => (await errors()) >= 1, 'a timed-out query counted', 8000);
    let t = new Traffic(port, '/x', 30);
    await t.stop();
    expect(t.failures).to.deep.equal([]);
    expect(new Set(t.answers)).to.deep.equal(new Set(['a']));
    consul.stall(false);

    await consul.down();
    const before = await errors();
    await waitFor(async () => (await errors()) > before, 'connection refused counted', 8000);
    t = new Traffic(port, '/x', 30);
    await t.stop();
    expect(t.failures).to.deep.equal([]);
    consul.deregister('node-a', 'cart-a');
    consul.register(inst('node-b', 'cart-b', b));
    await consul.up();
    await waitFor(async () => (await backendOf(port)) === 'b', 'recovered after the agent came back', 10_000);
    const warned = sc.logs.filter((l) => l.msg === 'discovery source failing; keeping the last good endpoints' && l.provider === 'consul');
    const recovered = sc.logs.filter((l) => l.msg === 'discovery source recovered' && l.provider === 'consul');
    expect(warned.length).to.equal(recovered.length); // once per state change
    expect(warned.length).to.be.within(1, 2);
  });

  it('refuses invalid Consul discovery config with the field path', async () => {
    const { buildSnapshot } = await import('../../../src/config/loader.js');
    const docs = [listener('main'), routes('main', [prefixRoute('/', 'x')]), consulCluster('x', { tags: ['v1'] })];
    const r = buildSnapshot(docs.map((value, index) => ({ value, source: { index } })), { allowEphemeralPorts: true });
    expect(r.ok ? [] : r.errors.map((e) => `${e.document} ${e.path}`)).to.deep.equal(['Cluster/x spec.consul.service']);
  });
});

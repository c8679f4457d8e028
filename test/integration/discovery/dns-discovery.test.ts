import { expect } from 'chai';
import { listener, prefixRoute, routes, type Doc } from '../../support/config-docs.js';
import { startDnsServer, type TestDnsServer } from '../../support/dns-server.js';
import { startNamedBackend, Traffic, type NamedBackend } from '../../support/discovery-traffic.js';
import { backendOf } from '../../support/backend-of.js';
import { startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { waitFor } from '../../support/wait.js';
import { metricValue } from '../../support/prom-text.js';

function dnsCluster(name: string, dns: Record<string, unknown>, extra: Record<string, unknown> = {}): Doc {
  return { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name }, spec: { type: 'DISCOVERY_TYPE_DNS', protocol: 'UPSTREAM_PROTOCOL_HTTP1', dns, ...extra } };
}

describe('Discovery: DNS clusters (STRICT_DNS) against a DNS server on loopback', function () {
  this.timeout(20_000);
  let dns: TestDnsServer;
  let a: NamedBackend;
  let b: NamedBackend;
  let sc: TestSidecar | undefined;

  beforeEach(async () => {
    dns = await startDnsServer();
    // Two backends on one port of two loopback addresses: DNS names addresses, the cluster the port.
    a = await startNamedBackend('a', '127.0.0.2');
    b = await startNamedBackend('b', '127.0.0.3', a.port);
  });

  afterEach(async () => {
    await sc?.close();
    sc = undefined;
    await Promise.all([a.close(), b.close(), dns.close()]);
  });

  it('routes to every address of the name and follows its changes with zero failed requests', async () => {
    dns.set('api.svc.test', { a: ['127.0.0.2'], ttl: 1 });
    sc = await startTestSidecar([
      listener('main'),
      routes('main', [prefixRoute('/', 'api')]),
      dnsCluster('api', { name: 'api.svc.test', port: a.port, resolvers: [dns.address], refreshRate: '0.1s', respectDnsTtl: false }),
    ]);
    const port = sc.port();
    await waitFor(async () => (await backendOf(port)) === 'a', 'traffic on the first address');

    dns.set('api.svc.test', { a: ['127.0.0.2', '127.0.0.3'], ttl: 1 });
    const t = new Traffic(port);
    try {
      await waitFor(() => t.countsSince(0).b !== undefined, 'the new address takes traffic', 5000);
      dns.set('api.svc.test', { a: ['127.0.0.3'], ttl: 1 });
      const removedAt = Date.now();
      await waitFor(() => t.lastAre('b', 20), 'the removed address stops taking traffic', 5000);
      expect(Date.now() - removedAt).to.be.below(1500);
    } finally {
      await t.stop();
    }
    expect(t.failures).to.deep.equal([]);
    const dump = sc.sidecar.store.current()!.documents.find((d) => d.kind === 'ClusterLoadAssignment' && d.metadata.name === 'api');
    expect(dump?.metadata.labels).to.deep.equal({ 'outrigger.io/generated': 'dns' });
    expect(dump?.spec.endpoints).to.deep.equal([{ address: { host: '127.0.0.3', port: a.port }, healthStatus: 'HEALTH_STATUS_HEALTHY', source: `dns:api.svc.test:${a.port}` }]);
  });

  it('re-resolves on the records\' TTL (respectDnsTtl, the default)', async () => {
    dns.set('ttl.svc.test', { a: ['127.0.0.2'], ttl: 1 });
    sc = await startTestSidecar([
      listener('main'),
      routes('main', [prefixRoute('/', 'api')]),
      // A refresh rate far longer than the test: only the 1 s TTL can bring the change.
      dnsCluster('api', { name: 'ttl.svc.test', port: a.port, resolvers: [dns.address], refreshRate: '3600s' }),
    ]);
    const port = sc.port();
    await waitFor(async () => (await backendOf(port)) === 'a', 'first address');
    dns.set('ttl.svc.test', { a: ['127.0.0.3'], ttl: 1 });
    const changedAt = Date.now();
    await waitFor(async () => (await backendOf(port)) === 'b', 'the change within the TTL', 5000);
    expect(Date.now() - changedAt).to.be.below(2500); // TTL 1 s + one resolution + one config swap
  });

  it('keeps the last good set while resolution fails (SERVFAIL, timeouts, NXDOMAIN), counts it, and recovers', async () => {
    dns.set('flaky.svc.test', { a: ['127.0.0.2'], ttl: 1 });
    sc = await startTestSidecar([
      listener('main'),
      routes('main', [prefixRoute('/', 'api')]),
      dnsCluster('api', { name: 'flaky.svc.test', port: a.port, resolvers: [dns.address], refreshRate: '0.1s', respectDnsTtl: false }),
    ]);
    const port = sc.port();
    await waitFor(async () => (await backendOf(port)) === 'a', 'first address');
    const errors = async () => metricValue(await sc!.metrics(), 'outrigger_discovery_errors_total', { provider: 'dns' }) ?? 0;

    for (const fault of ['servfail', 'nxdomain', 'drop'] as const) {
      const before = await errors();
      if (fault === 'nxdomain') dns.set('flaky.svc.test', undefined);
      else dns.mode(fault);
      await waitFor(async () => (await errors()) > before, `${fault} counted`, 8000);
      const t = new Traffic(port, '/x', 30);
      await t.stop();
      expect(t.failures, fault).to.deep.equal([]);
      expect(new Set(t.answers), fault).to.deep.equal(new Set(['a']));
      dns.mode('answer');
      dns.set('flaky.svc.test', { a: ['127.0.0.2'], ttl: 1 });
    }
    // One warning for the failing state, not one per failed resolution.
    const warned = sc.logs.filter((l) => l.msg === 'discovery source failing; keeping the last good endpoints' && l.source === 'flaky.svc.test');
    expect(warned.length).to.be.at.most(3);
    dns.set('flaky.svc.test', { a: ['127.0.0.3'], ttl: 1 });
    await waitFor(async () => (await backendOf(port)) === 'b', 'recovery');
  });

  it('SRV records give targets, ports and weights', async () => {
    const c = await startNamedBackend('c', '127.0.0.1');
    try {
      dns.set('_http._tcp.api.svc.test', {
        srv: [
          { priority: 10, weight: 3, port: a.port, target: 'a.svc.test' },
          { priority: 10, weight: 1, port: c.port, target: 'c.svc.test' },
        ],
        ttl: 1,
      });
      dns.set('a.svc.test', { a: ['127.0.0.2'] });
      dns.set('c.svc.test', { a: ['127.0.0.1'] });
      sc = await startTestSidecar([
        listener('main'),
        routes('main', [prefixRoute('/', 'api')]),
        dnsCluster('api', { name: '_http._tcp.api.svc.test', srv: true, resolvers: [dns.address] }),
      ]);
      const port = sc.port();
      await waitFor(async () => (await backendOf(port)) !== 'status 503' && !(await backendOf(port)).startsWith('error'), 'resolved');
      const t = new Traffic(port, '/x', 400);
      await waitFor(() => t.answers.length + t.failures.length >= 400, '400 answers', 15_000);
      await t.stop();
      expect(t.failures).to.deep.equal([]);
      const counts = t.countsSince(0);
      expect(counts.a).to.equal(300); // smooth weighted round robin: exactly 3:1
      expect(counts.c).to.equal(100);
    } finally {
      await c.close();
    }
  });

  it('refuses invalid DNS discovery config with the field path', async () => {
    const { buildSnapshot } = await import('../../../src/config/loader.js');
    const docs = [
      listener('main'),
      routes('main', [prefixRoute('/', 'x'), prefixRoute('/y', 'y'), prefixRoute('/z', 'z')]),
      dnsCluster('x', { name: 'x.test', port: 80, srv: true }),
      dnsCluster('y', { port: 80, resolvers: ['nope'] }),
      { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name: 'z' }, spec: { type: 'DISCOVERY_TYPE_STATIC', endpoints: [{ address: { host: '127.0.0.1', port: 1 } }], dns: { name: 'z.test', port: 1 } } },
    ];
    const r = buildSnapshot(docs.map((value, index) => ({ value, source: { index } })), { allowEphemeralPorts: true });
    expect(r.ok).to.equal(false);
    const errs = r.ok ? [] : r.errors.map((e) => `${e.document} ${e.path}`);
    expect(errs).to.include.members(['Cluster/x spec.dns.port', 'Cluster/y spec.dns.name', 'Cluster/y spec.dns.resolvers[0]', 'Cluster/z spec.dns']);
  });
});

import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { outboundDocuments } from '../../../injector/inbound-config.js';
import { inject } from '../../../injector/inject.js';
import { defaultMeshConfig } from '../../../injector/mesh-config.js';
import type { Container } from '../../../injector/pod-types.js';
import { endpointSlice, pod, service, startKubeApiServer, type KubeApiServer } from '../../support/kube-api-server.js';
import { startNamedBackend, type NamedBackend } from '../../support/discovery-traffic.js';
import { outrigger, spawnControlPlane, spawnSidecar, startCpSidecar, type TestCpSidecar } from '../../support/control-harness.js';
import { waitFor } from '../../support/wait.js';
import { metricValue } from '../../support/prom-text.js';

/** Who answers a request for `host` on the outbound listener: the backend's name, or `status N` / `error …`. */
async function via(port: number, host: string): Promise<string> {
  try {
    const res = await request(`http://127.0.0.1:${port}/x`, { headers: { host } });
    const text = await res.body.text();
    return res.statusCode === 200 ? (JSON.parse(text) as { backend: string }).backend : `status ${res.statusCode}`;
  } catch (err) {
    return `error ${(err as Error).message}`;
  }
}

describe('The mesh: outrigger control --discover kubernetes generates clusters, endpoints and the outbound routes', function () {
  this.timeout(60_000);
  let dir: string;
  let api: KubeApiServer;
  let a: NamedBackend;
  let b: NamedBackend;
  let cp: { child: ChildProcess; port: number; stdout: () => string } | undefined;
  let sc: TestCpSidecar | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mesh-'));
    api = await startKubeApiServer(dir, 'shop');
    a = await startNamedBackend('a', '127.0.0.2');
    b = await startNamedBackend('b', '127.0.0.3', a.port);
  });

  afterEach(async () => {
    await sc?.close();
    sc = undefined;
    if (cp && cp.child.exitCode === null) {
      const exited = new Promise((r) => cp!.child.once('exit', r));
      cp.child.kill('SIGTERM');
      await exited;
    }
    cp = undefined;
    await Promise.all([a.close(), b.close(), api.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('injected sidecars reach Services by name:port; EndpointSlice changes move live traffic; other namespaces are out of scope', async () => {
    api.put('namespaces', { metadata: { name: 'shop', namespace: '', labels: { mesh: 'on' } } });
    api.put('services', service('shop', 'cart', [{ name: 'http-web', port: 8080, targetPort: a.port }, { name: 'grpc-api', port: 9090, targetPort: 9090 }], '10.96.0.42'));
    api.put('pods', pod('shop', 'cart-a', '127.0.0.2', { app: 'cart', version: 'v1' }));
    api.put('endpointslices', endpointSlice('shop', 'cart-1', 'cart', [{ name: 'http-web', port: a.port }, { name: 'grpc-api', port: 9090 }], [{ ip: '127.0.0.2', pod: 'cart-a' }]));
    api.put('services', service('other', 'cart', [{ name: 'http', port: 8080 }], '10.96.0.43'));
    cp = await spawnControlPlane(['--store', `file:${join(dir, 'store')}`, '--no-auth', '--discover', 'kubernetes', '--kubeconfig', api.kubeconfig, '--namespaces', 'shop']);

    // The injector's bootstrap: the outbound listener names RouteConfiguration "outbound", which the control plane now generates.
    const bootstrap = join(dir, 'bootstrap.yaml');
    await writeFile(bootstrap, outboundDocuments('ALLOW_ANY', 0, '127.0.0.1').map((d) => stringify(d)).join('---\n'));
    sc = await startCpSidecar({ address: `127.0.0.1:${cp.port}`, nodeId: 'shop-web-1' }, { configPath: bootstrap });
    const port = sc.port('outbound');

    for (const host of ['cart:8080', 'cart.shop:8080', 'cart.shop.svc:8080', 'cart.shop.svc.cluster.local:8080', '10.96.0.42:8080']) {
      await waitFor(async () => (await via(port, host)) === 'a', `${host} routed to the Service's endpoint`, 15_000);
    }
    const snap = sc.sidecar.store.current()!;
    const cluster = snap.clusters.get('outbound|8080||cart.shop.svc.cluster.local')!;
    expect(cluster.protocol).to.equal(1); // http- → HTTP/1.1
    expect(snap.clusters.get('outbound|9090||cart.shop.svc.cluster.local')!.protocol).to.equal(2); // grpc- → HTTP/2
    expect(snap.clusters.has('outbound|8080||cart.other.svc.cluster.local')).to.equal(false);
    const doc = snap.documents.find((d) => d.kind === 'ClusterLoadAssignment' && d.metadata.name === 'outbound|8080||cart.shop.svc.cluster.local')!;
    // Over xDS the resource is the message alone (the generated label stays on the control plane's side).
    expect(doc.spec.endpoints).to.deep.equal([
      { address: { host: '127.0.0.2', port: a.port }, healthStatus: 'HEALTH_STATUS_HEALTHY', metadata: { app: 'cart', version: 'v1' }, source: 'kubernetes:shop/cart:8080' },
    ]);

    // An endpoint added and the old one removed: traffic follows within a second.
    api.put('endpointslices', endpointSlice('shop', 'cart-1', 'cart', [{ name: 'http-web', port: a.port }], [{ ip: '127.0.0.3' }]));
    const at = Date.now();
    await waitFor(async () => (await via(port, 'cart.shop:8080')) === 'b', 'the new endpoint', 5000);
    expect(Date.now() - at).to.be.below(1500);
    // Unknown hosts still pass through (ALLOW_ANY's catch-all is kept in the generated route config).
    expect(snap.routeConfigs.get('outbound')!.virtualHosts.at(-1)!.domains).to.deep.equal(['*']);

    const st = await outrigger(['status', '--control-plane', `127.0.0.1:${cp.port}`]);
    expect(st.code, st.stderr).to.equal(0);
    expect(st.stdout).to.match(/PROVIDER\s+CONNECTED/).and.match(/kubernetes\s+true\s+\S+\s+1\s+0/);
    const js = await outrigger(['status', '-o', 'json', '--control-plane', `127.0.0.1:${cp.port}`]);
    expect(js.code, js.stderr).to.equal(0);
    const parsed = JSON.parse(js.stdout) as { sidecars: { nodeId: string }[]; providers: { provider: string; connected: boolean; lastEvent?: string; services: number; errors: number; lastError?: string }[] };
    expect(parsed.sidecars.map((x) => x.nodeId)).to.deep.equal(['shop-web-1']);
    expect(parsed.providers).to.have.length(1);
    expect(parsed.providers[0]).to.include({ provider: 'kubernetes', connected: true, services: 1, errors: 0 });
    expect(Date.parse(parsed.providers[0]!.lastEvent!)).to.be.within(at - 60_000, Date.now());

    // Discovery's metrics on the control plane: events by provider and kind, and the push time to the ACK.
    const metricsPort = (JSON.parse(cp.stdout().split('\n').find((l) => l.includes('"control plane ready"'))!) as { metricsPort: number }).metricsPort;
    const metrics = await (await request(`http://127.0.0.1:${metricsPort}/metrics`)).body.text();
    expect(metricValue(metrics, 'outrigger_discovery_events_total', { provider: 'kubernetes', event: 'sync' })).to.be.above(0);
    expect(metricValue(metrics, 'outrigger_discovery_events_total', { provider: 'kubernetes', event: 'update' })).to.be.above(0);
    expect(metricValue(metrics, 'outrigger_discovery_push_seconds_count', { provider: 'kubernetes' })).to.be.above(0);
    expect(metricValue(metrics, 'outrigger_discovery_errors_total', { provider: 'kubernetes' }) ?? 0).to.equal(0);
  });

  it("a sidecar started with the injector's args reaches a Service by name:port; an EndpointSlice change moves traffic within 1 s with no failed request; /clusters shows each endpoint's source and labels", async () => {
    api.put('services', service('shop', 'cart', [{ name: 'http-web', port: 8080, targetPort: a.port }], '10.96.0.42'));
    api.put('pods', pod('shop', 'cart-a', '127.0.0.2', { app: 'cart', version: 'v1' }));
    api.put('pods', pod('shop', 'cart-b', '127.0.0.3', { app: 'cart', version: 'v2' }));
    api.put('endpointslices', endpointSlice('shop', 'cart-1', 'cart', [{ name: 'http-web', port: a.port }], [{ ip: '127.0.0.2', pod: 'cart-a' }]));
    cp = await spawnControlPlane(['--store', `file:${join(dir, 'store')}`, '--no-auth', '--discover', 'kubernetes', '--kubeconfig', api.kubeconfig, '--namespaces', 'shop']);

    // inject()'s proxy container, as the kubelet would run it: paths into the test's directory,
    // $(VAR)s expanded; the file outrigger-init writes (its outbound part: no iptables here).
    const mesh = { ...defaultMeshConfig(), controlPlaneAddress: `127.0.0.1:${cp.port}` };
    const injected = inject({ metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'app' }] } }, mesh, '1.28').pod;
    const proxyC = [...(injected.spec!.initContainers ?? []), ...injected.spec!.containers].find((c: Container) => c.name === 'outrigger-proxy')!;
    const state = join(dir, 'pod-state');
    const podinfo = join(dir, 'podinfo');
    const tokens = join(dir, 'tokens');
    for (const d of [state, podinfo, tokens]) await mkdir(d);
    await writeFile(join(podinfo, 'labels'), 'app="web"\n');
    await writeFile(join(tokens, 'outrigger-token'), 'any-token\n');
    await writeFile(join(state, 'inbound.yaml'), outboundDocuments('ALLOW_ANY', 0, '127.0.0.1').map((d) => stringify(d)).join('---\n'));
    const env: Record<string, string> = { POD_NAME: 'web-1', POD_NAMESPACE: 'shop' };
    expect(proxyC.args![0]).to.equal('sidecar');
    const args = proxyC.args!.slice(1).map((x) =>
      x.replace(/\$\((\w+)\)/g, (_m, v: string) => env[v]!).replace('/var/lib/outrigger', state).replace('/etc/outrigger/podinfo', podinfo).replace('/var/run/secrets/outrigger/tokens', tokens),
    );
    // The status port is fixed in a pod; any free one here.
    args[args.indexOf('--status-port') + 1] = '0';
    expect(args).to.include.members(['--control-plane', `127.0.0.1:${cp.port}`, '--config', join(state, 'inbound.yaml')]);
    const proc = await spawnSidecar(args);
    try {
      const port = proc.listeners.outbound!.port;
      const adminPort = (JSON.parse(proc.stdout().split('\n').find((l) => l.includes('"sidecar ready"'))!) as { adminPort: number }).adminPort;
      await waitFor(async () => (await via(port, 'cart.shop:8080')) === 'a', 'cart.shop:8080 routed to its endpoint', 15_000);

      const CART = 'outbound|8080||cart.shop.svc.cluster.local';
      type Ep = { address: string; source: string; metadata: Record<string, string> };
      const clusters = async (): Promise<{ clusters: Record<string, { endpoints: Ep[] }> }> => (await request(`http://127.0.0.1:${adminPort}/clusters`)).body.json() as never;
      const ep = (await clusters()).clusters[CART]!.endpoints[0]!;
      expect(ep).to.include({ address: `127.0.0.2:${a.port}`, source: 'kubernetes:shop/cart:8080' });
      expect(ep.metadata).to.deep.equal({ app: 'cart', version: 'v1' });
      const text = await (await request(`http://127.0.0.1:${adminPort}/clusters?format=text`)).body.text();
      expect(text).to.contain(`${CART}::127.0.0.2:${a.port}::source::kubernetes:shop/cart:8080\n`).and.contain(`${CART}::127.0.0.2:${a.port}::metadata::app=cart,version=v1\n`);

      // Live traffic through the change: the old endpoint stays up, so no request may fail.
      let failures = 0;
      let total = 0;
      let movedAt = 0;
      let stop = false;
      const load = (async () => {
        while (!stop) {
          const who = await via(port, 'cart.shop:8080');
          total++;
          if (who !== 'a' && who !== 'b') failures++;
          if (who === 'b' && movedAt === 0) movedAt = Date.now();
        }
      })();
      await waitFor(() => total >= 20, 'traffic before the change', 5000);
      const changedAt = Date.now();
      api.put('endpointslices', endpointSlice('shop', 'cart-1', 'cart', [{ name: 'http-web', port: a.port }], [{ ip: '127.0.0.3', pod: 'cart-b' }]));
      await waitFor(() => movedAt > 0, 'traffic on the new endpoint', 5000);
      const after = total;
      await waitFor(() => total >= after + 20, 'traffic after the change', 5000);
      stop = true;
      await load;
      expect(failures, `${failures} of ${total} failed`).to.equal(0);
      expect(movedAt - changedAt).to.be.below(1000);
      const moved = (await clusters()).clusters[CART]!.endpoints;
      expect(moved.map((e) => [e.address, e.source, e.metadata.version])).to.deep.equal([[`127.0.0.3:${a.port}`, 'kubernetes:shop/cart:8080', 'v2']]);
    } finally {
      await proc.stop();
    }
  });

  it('refuses bad discovery flags: an unknown selector syntax, both scopes, an unknown provider', async () => {
    const bad = [
      ['--discover', 'kubernetes', '--namespace-selector', 'env in (prod)'],
      ['--discover', 'kubernetes', '--namespaces', 'a', '--namespace-selector', 'k=v'],
      ['--discover', 'eureka'],
    ];
    for (const args of bad) {
      const r = await outrigger(['control', '--store', `file:${dir}`, '--no-auth', ...args]);
      expect(r.code, args.join(' ')).to.equal(2);
      expect(r.stderr).to.match(/--namespace-selector|exclude each other|--discover/);
    }
  });
});

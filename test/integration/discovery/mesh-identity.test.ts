import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { outboundDocuments } from '../../../injector/inbound-config.js';
import { endpointSlice, pod, service, startKubeApiServer, type KubeApiServer } from '../../support/kube-api-server.js';
import { spawnControlPlane, startCpSidecar, type TestCpSidecar } from '../../support/control-harness.js';
import { waitFor } from '../../support/wait.js';
import { TlsMode } from '../../../src/gen/outrigger/config/v1/cluster_pb.js';

const CART = 'outbound|8080||cart.shop.svc.cluster.local';
const INJECTED = { 'outrigger.io/status': '{"version":"test"}' };

/** A pod as the injector leaves it: its service account and the status annotation. */
function injectedPod(name: string, ip: string, serviceAccount: string, injected = true): ReturnType<typeof pod> {
  const p = pod('shop', name, ip, { app: 'cart' }) as unknown as { metadata: Record<string, unknown>; spec: Record<string, unknown> };
  if (injected) p.metadata.annotations = INJECTED;
  p.spec.serviceAccountName = serviceAccount;
  return p as unknown as ReturnType<typeof pod>;
}

/**
 * Issue 17 point 4: with `--mesh-mtls`, a cluster generated for a Service
 * expects the SPIFFE IDs of its endpoint pods' service accounts (EndpointSlice
 * → Pod → serviceAccountName), and is plaintext while any endpoint runs no
 * sidecar. A real control plane on the test Kubernetes API server; a real
 * sidecar receives the clusters.
 */
describe('The mesh: --mesh-mtls expects the destination service accounts of generated clusters', function () {
  this.timeout(60_000);
  let dir: string;
  let api: KubeApiServer;
  let cp: { child: ChildProcess; port: number } | undefined;
  let sc: TestCpSidecar | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mesh-id-'));
    api = await startKubeApiServer(dir, 'shop');
  });
  after(async () => {
    await sc?.close();
    if (cp && cp.child.exitCode === null) {
      const exited = new Promise((r) => cp!.child.once('exit', r));
      cp.child.kill('SIGTERM');
      await exited;
    }
    await api?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('TLS_MODE_MESH with the pods’ service accounts; plaintext while an endpoint has no sidecar', async () => {
    api.put('services', service('shop', 'cart', [{ name: 'http', port: 8080 }], '10.96.0.42'));
    api.put('pods', injectedPod('cart-a', '127.0.0.2', 'cart'));
    api.put('pods', injectedPod('cart-b', '127.0.0.3', 'cart-canary'));
    api.put('endpointslices', endpointSlice('shop', 'cart-1', 'cart', [{ name: 'http', port: 8080 }], [{ ip: '127.0.0.2', pod: 'cart-a' }, { ip: '127.0.0.3', pod: 'cart-b' }]));
    cp = await spawnControlPlane(['--store', `file:${join(dir, 'store')}`, '--no-auth', '--discover', 'kubernetes', '--kubeconfig', api.kubeconfig, '--namespaces', 'shop', '--mesh-mtls', '--trust-domain', 'mesh.test']);
    const bootstrap = join(dir, 'bootstrap.yaml');
    await writeFile(bootstrap, outboundDocuments('ALLOW_ANY', 0, '127.0.0.1').map((d) => stringify(d)).join('---\n'));
    sc = await startCpSidecar({ address: `127.0.0.1:${cp.port}`, nodeId: 'web-1.shop' }, { configPath: bootstrap });
    const tlsOf = (): unknown => sc!.sidecar.store.current()!.documents.find((d) => d.kind === 'Cluster' && d.metadata.name === CART)?.spec.tls;
    await waitFor(() => tlsOf() !== undefined, 'the cart cluster with tls', 15_000);
    expect(tlsOf()).to.deep.equal({ mode: 'TLS_MODE_MESH', subjectAltNames: ['spiffe://mesh.test/ns/shop/sa/cart', 'spiffe://mesh.test/ns/shop/sa/cart-canary'] });
    // The snapshot the data path compiles has it as mesh mTLS.
    expect(sc.sidecar.store.current()!.clusters.get(CART)!.tls?.mode).to.equal(TlsMode.MESH);

    // A pod without a sidecar joins the Service: the cluster goes plaintext (it could not answer mTLS).
    api.put('pods', injectedPod('cart-c', '127.0.0.4', 'legacy', false));
    api.put('endpointslices', endpointSlice('shop', 'cart-1', 'cart', [{ name: 'http', port: 8080 }], [{ ip: '127.0.0.2', pod: 'cart-a' }, { ip: '127.0.0.4', pod: 'cart-c' }]));
    await waitFor(() => tlsOf() === undefined && sc!.sidecar.store.current()!.documents.some((d) => d.kind === 'ClusterLoadAssignment' && JSON.stringify(d.spec).includes('127.0.0.4')), 'cart cluster plaintext', 15_000);
    // It is injected later (the pod changes): mTLS again, with its service account.
    api.put('pods', injectedPod('cart-c', '127.0.0.4', 'legacy'));
    await waitFor(() => JSON.stringify(tlsOf()) === JSON.stringify({ mode: 'TLS_MODE_MESH', subjectAltNames: ['spiffe://mesh.test/ns/shop/sa/cart', 'spiffe://mesh.test/ns/shop/sa/legacy'] }), 'cart cluster expects legacy', 15_000);
  });
});

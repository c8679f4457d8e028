import { expect } from 'chai';
import http2 from 'node:http2';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { systemClock } from '../../../src/core/clock.js';
import { loadKubeConfig } from '../../../src/discovery/kubernetes/kube-connection.js';
import { KubernetesProvider } from '../../../src/discovery/kubernetes/kube-provider.js';
import { KubeMesh } from '../../../src/discovery/mesh/kube-mesh.js';
import { ClusterLoadAssignmentSchema } from '../../../src/gen/outrigger/config/v1/cluster_pb.js';
import type { DeltaDiscoveryResponse, DiscoveryResponse } from '../../../src/gen/outrigger/control/v1/discovery_pb.js';
import { client, collector, startTestControlPlane } from '../../support/control-harness.js';
import { endpointSlice, service, startKubeApiServer, type KubeApiServer } from '../../support/kube-api-server.js';
import { waitFor } from '../../support/wait.js';
import { RawDelta, RawSotw } from '../../support/xds-raw.js';
import { TYPE, kindOf, nodeOf } from '../../support/xds-light.js';

const CART = 'outbound|8080||cart.shop.svc.cluster.local';
const USERS = 'outbound|8080||users.shop.svc.cluster.local';

/** Responses of a raw stream, read one by one. */
function queue<T>(s: { onResponse: ((r: T) => void) | undefined }): (timeoutMs?: number) => Promise<T> {
  const got: T[] = [];
  let wake: (() => void) | undefined;
  s.onResponse = (r) => {
    got.push(r);
    wake?.();
  };
  return async (timeoutMs = 3000) => {
    const deadline = Date.now() + timeoutMs;
    while (got.length === 0) {
      if (Date.now() > deadline) throw new Error(`no response within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 50).unref();
      });
    }
    return got.shift()!;
  };
}

const ports = (anys: readonly { typeUrl: string; value: Uint8Array }[]): Record<string, number[]> =>
  Object.fromEntries(anys.map((a) => anyUnpack(a as never, ClusterLoadAssignmentSchema)!).map((m) => [m.name, m.endpoints.map((e) => e.address!.port)]));

/**
 * The mesh's endpoint changes travel as EDS only: an EndpointSlice change
 * moves one ClusterLoadAssignment and nothing else (same Cluster and
 * RouteConfiguration versions), and a delta stream gets only that assignment.
 */
describe('The mesh from Kubernetes: an EndpointSlice change goes out as EDS only', function () {
  this.timeout(30_000);
  let dir: string;
  let api: KubeApiServer;
  let provider: KubernetesProvider;
  let mesh: KubeMesh;
  let cp: Awaited<ReturnType<typeof startTestControlPlane>>;
  let session: http2.ClientHttp2Session;
  let converged: number[];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mesh-eds-'));
    api = await startKubeApiServer(dir, 'shop');
    api.put('services', service('shop', 'cart', [{ name: 'http', port: 8080 }], '10.96.0.10'));
    api.put('services', service('shop', 'users', [{ name: 'http', port: 8080 }], '10.96.0.11'));
    api.put('endpointslices', endpointSlice('shop', 'cart-1', 'cart', [{ name: 'http', port: 3001 }], [{ ip: '10.0.0.1' }]));
    api.put('endpointslices', endpointSlice('shop', 'users-1', 'users', [{ name: 'http', port: 4001 }], [{ ip: '10.0.0.2' }]));
    const logs: Record<string, unknown>[] = [];
    provider = new KubernetesProvider({ kubeConfig: loadKubeConfig(api.kubeconfig), clock: systemClock(), logger: collector(logs) });
    mesh = new KubeMesh({ provider, scope: { kind: 'namespaces', names: ['shop'] }, clock: systemClock(), logger: collector(logs) });
    converged = [];
    cp = await startTestControlPlane({ debounceMs: 10, generated: mesh, onGeneratedConverged: (s) => converged.push(s) });
    await waitFor(() => mesh.services === 2, 'both Services generated', 10_000);
    session = http2.connect(`http://${cp.address}`);
  });

  afterEach(async () => {
    session?.close();
    await cp?.close();
    mesh?.close();
    await provider?.close();
    await api?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('delta: only the changed assignment is sent; no Cluster or RouteConfiguration response follows', async () => {
    const s = new RawDelta(session);
    const next = queue<DeltaDiscoveryResponse>(s);
    const subscribe = async (kind: string, names: string[]): Promise<DeltaDiscoveryResponse> => {
      s.send({ ...(kind === 'Cluster' ? { node: nodeOf('eds-delta') } : {}), typeUrl: TYPE(kind), resourceNamesSubscribe: names });
      const r = await next();
      expect(kindOf(r.typeUrl)).to.equal(kind);
      s.ack(r);
      return r;
    };
    const clusters = await subscribe('Cluster', ['*']);
    expect(clusters.resources.map((r) => r.name)).to.include.members([CART, USERS]);
    expect(ports((await subscribe('ClusterLoadAssignment', [CART, USERS])).resources.map((r) => r.resource!))).to.deep.equal({ [CART]: [3001], [USERS]: [4001] });
    const route = await subscribe('RouteConfiguration', ['outbound']);
    expect(route.resources.map((r) => r.name)).to.deep.equal(['outbound']);

    api.put('endpointslices', endpointSlice('shop', 'cart-1', 'cart', [{ name: 'http', port: 3002 }], [{ ip: '10.0.0.1' }, { ip: '10.0.0.3' }]));
    const moved = await next();
    expect(kindOf(moved.typeUrl)).to.equal('ClusterLoadAssignment');
    expect(moved.resources.map((r) => r.name)).to.deep.equal([CART]); // not users'
    expect(moved.removedResources).to.deep.equal([]);
    expect(ports(moved.resources.map((r) => r.resource!))).to.deep.equal({ [CART]: [3002, 3002] });
    const before = converged.length;
    s.ack(moved);
    // Discovery's push time: from the informer's event to this (the only) sidecar's ACK.
    await waitFor(() => converged.length === before + 1, 'the push measured at its ACK', 2000);
    expect(converged.at(-1)).to.be.within(0, 1);
    // A push sends its types in order (clusters, endpoints, …, routes): when the next response is the
    // one of a second change, no Cluster or RouteConfiguration response came with the first.
    api.put('endpointslices', endpointSlice('shop', 'users-1', 'users', [{ name: 'http', port: 4002 }], [{ ip: '10.0.0.2' }]));
    const marker = await next();
    expect(kindOf(marker.typeUrl)).to.equal('ClusterLoadAssignment');
    expect(ports(marker.resources.map((r) => r.resource!))).to.deep.equal({ [USERS]: [4002] });
    s.close();

    // `outrigger get` shows the generated set; the dump re-applied as it is writes nothing.
    const operator = client(cp.address);
    const listed = await operator.list({});
    expect(listed.resources.every((r) => r.version === 'generated')).to.equal(true);
    expect(listed.resources).to.have.length(6); // 2 clusters + passthrough, 2 assignments, the route config
    const again = await operator.apply({ documents: listed.resources.map((r) => r.document!) });
    expect(again.unchanged).to.have.length(6);
  });

  it('SotW: the EDS version moves, the Cluster and RouteConfiguration versions do not (nothing of theirs is sent)', async () => {
    const s = new RawSotw(session);
    const next = queue<DiscoveryResponse>(s);
    const subscribe = async (kind: string, names: string[]): Promise<DiscoveryResponse> => {
      s.send({ ...(kind === 'Cluster' ? { node: nodeOf('eds-sotw') } : {}), typeUrl: TYPE(kind), resourceNames: names });
      const r = await next();
      expect(kindOf(r.typeUrl)).to.equal(kind);
      s.ack(r, names);
      return r;
    };
    const clusters = await subscribe('Cluster', ['*']);
    const eds = await subscribe('ClusterLoadAssignment', [CART, USERS]);
    const route = await subscribe('RouteConfiguration', ['outbound']);

    api.put('endpointslices', endpointSlice('shop', 'users-1', 'users', [{ name: 'http', port: 4002 }], [{ ip: '10.0.0.2' }]));
    const moved = await next();
    expect(kindOf(moved.typeUrl)).to.equal('ClusterLoadAssignment');
    expect(moved.versionInfo).to.not.equal(eds.versionInfo);
    expect(ports(moved.resources)).to.deep.equal({ [CART]: [3001], [USERS]: [4002] });
    s.ack(moved, [CART, USERS]);
    s.send({ typeUrl: TYPE('Listener'), resourceNames: ['*'] });
    expect(kindOf((await next()).typeUrl)).to.equal('Listener');
    // Asked again, the Cluster and RouteConfiguration versions are the ones ACKed before the change.
    const status = cp.plane.statusOf()[0]!;
    expect(status.node?.id).to.equal('eds-sotw');
    expect(clusters.versionInfo).to.not.equal('');
    expect(route.versionInfo).to.not.equal('');
    const view = cp.plane.viewFor(status)!;
    expect(view.versions.get('Cluster')).to.equal(clusters.versionInfo);
    expect(view.versions.get('RouteConfiguration')).to.equal(route.versionInfo);
    s.close();
  });
});

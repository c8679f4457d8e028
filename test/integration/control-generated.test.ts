import { expect } from 'chai';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import type { JsonObject, ResourceDocument } from '../../src/config/snapshot.js';
import { GeneratedResourceSet } from '../../src/control/server/generated-resources.js';
import { FileStateStore } from '../../src/control/store/file-store.js';
import { ClusterLoadAssignmentSchema } from '../../src/gen/outrigger/config/v1/cluster_pb.js';
import type { DiscoveryResponse } from '../../src/gen/outrigger/control/v1/discovery_pb.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { client, startTestControlPlane } from '../support/control-harness.js';
import { LightSotw, TYPE, nodeOf, transportFor } from '../support/xds-light.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];

const doc = (kind: string, name: string, spec: JsonObject): ResourceDocument => ({ apiVersion: 'outrigger.io/v1', kind: kind as ResourceDocument['kind'], metadata: { name }, spec });
const edsCluster = (name: string): ResourceDocument => doc('Cluster', name, { type: 'DISCOVERY_TYPE_EDS' });
const cla = (name: string, port: number): ResourceDocument => doc('ClusterLoadAssignment', name, { endpoints: [{ address: { host: '127.0.0.1', port } }] });

/** The endpoint ports of each ClusterLoadAssignment in a SotW response, read off the wire. */
const endpointPorts = (r: DiscoveryResponse): Record<string, number[]> =>
  Object.fromEntries(
    r.resources.map((a) => {
      const m = anyUnpack(a, ClusterLoadAssignmentSchema)!;
      return [m.name, m.endpoints.map((e) => e.address!.port)];
    }),
  );

/**
 * Generated resources (what discovery providers will produce) are served
 * beside the stored ones on a real stream, without a store revision, a
 * history entry or an audit line per change; an operator's resource of the
 * same kind and name wins.
 */
describe('control plane: generated resources', function () {
  this.timeout(10000);

  it('a generated ClusterLoadAssignment change reaches a subscribed stream; the store, its history and the audit log do not move', async () => {
    const generated = new GeneratedResourceSet([edsCluster('disc'), cla('disc', 2001)]);
    const cp = await startTestControlPlane({ debounceMs: 10, generated });
    const api = client(cp.address);
    const s = new LightSotw(transportFor(cp.address));
    try {
      await api.apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [1001])) });
      s.send({ node: nodeOf('gen-1'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
      const clusters = await s.next();
      expect(clusters.resources).to.have.length(2); // web (stored) and disc (generated)
      s.ack(clusters, ['*']);
      s.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNames: ['disc'] });
      const first = await s.next();
      expect(endpointPorts(first)).to.deep.equal({ disc: [2001] });
      s.ack(first, ['disc']);

      const revision = (await api.list({})).revision;
      const history = cp.plane.current.history.length;
      const auditLines = cp.logs.filter((l) => l.audit === true).length;

      generated.replace([edsCluster('disc'), cla('disc', 2002)]);
      const next = await s.next();
      expect(next.typeUrl).to.equal(TYPE('ClusterLoadAssignment'));
      expect(endpointPorts(next)).to.deep.equal({ disc: [2002] });
      expect(next.versionInfo).not.to.equal(first.versionInfo);
      s.ack(next, ['disc']);

      expect((await api.list({})).revision).to.equal(revision);
      expect(cp.plane.current.history).to.have.length(history);
      expect(cp.logs.filter((l) => l.audit === true)).to.have.length(auditLines);
      const durable = await (await FileStateStore.open(cp.dir)).load();
      expect(durable.revision).to.equal(Number(revision));
      expect(durable.resources.map((e) => `${e.doc.kind}/${e.doc.metadata.name}`)).to.not.include('ClusterLoadAssignment/disc');
      // Only the endpoints changed: no other type is pushed. The stream answers in order, so when a
      // Listener subscription sent now is answered next, nothing else was sent before it.
      s.send({ typeUrl: TYPE('Listener'), resourceNames: ['*'] });
      expect((await s.next()).typeUrl).to.equal(TYPE('Listener'));
    } finally {
      s.close();
      await cp.close();
    }
  });

  it("an operator's resource of the same kind and name wins: the generated one is not served, and its changes push nothing", async () => {
    const generated = new GeneratedResourceSet([edsCluster('disc'), cla('disc', 2001)]);
    const cp = await startTestControlPlane({ debounceMs: 10, generated });
    const api = client(cp.address);
    const s = new LightSotw(transportFor(cp.address));
    try {
      const pinned = { ...cla('disc', 3000) } as unknown as Doc;
      await api.apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'disc')]), edsCluster('disc') as unknown as Doc, pinned) });
      s.send({ node: nodeOf('gen-2'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
      s.ack(await s.next(), ['*']);
      s.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNames: ['disc'] });
      const first = await s.next();
      expect(endpointPorts(first)).to.deep.equal({ disc: [3000] });
      s.ack(first, ['disc']);

      generated.replace([edsCluster('disc'), cla('disc', 2002)]);
      // A marker change after it goes through the same debounced push: the next response must be the
      // marker's Cluster update, with no endpoints response for disc before it.
      await api.apply({ documents: J(cluster('marker', [1002])) });
      const after = await s.next();
      expect(after.typeUrl).to.equal(TYPE('Cluster'));
    } finally {
      s.close();
      await cp.close();
    }
  });
});

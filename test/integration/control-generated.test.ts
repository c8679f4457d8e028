import { expect } from 'chai';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import type { JsonObject, ResourceDocument } from '../../src/config/snapshot.js';
import { GeneratedResourceSet } from '../../src/control/server/generated-resources.js';
import { FileStateStore } from '../../src/control/store/file-store.js';
import { Code, ConnectError } from '@connectrpc/connect';
import { ClusterLoadAssignmentSchema, ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy, type Cluster } from '../../src/gen/outrigger/config/v1/cluster_pb.js';
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

  it("an operator's resource stored before a generated one of its kind and name appears wins: the generated one is not served, and its changes push nothing", async () => {
    const generated = new GeneratedResourceSet([]);
    const cp = await startTestControlPlane({ debounceMs: 10, generated });
    const api = client(cp.address);
    const s = new LightSotw(transportFor(cp.address));
    try {
      const pinned = { ...cla('disc', 3000) } as unknown as Doc;
      await api.apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'disc')]), edsCluster('disc') as unknown as Doc, pinned) });
      generated.replace([edsCluster('disc'), cla('disc', 2001)]);
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

  it('a rollback to a revision whose name discovery now generates is refused like an apply', async () => {
    const generated = new GeneratedResourceSet([]);
    const cp = await startTestControlPlane({ debounceMs: 10, generated });
    const api = client(cp.address);
    try {
      await api.apply({ documents: J(cluster('disc', [1001])) });
      const written = (await api.history({ kind: 'Cluster', name: 'disc' })).revisions[0]!.revision;
      await api.delete({ kind: 'Cluster', name: 'disc' });
      generated.replace([{ ...edsCluster('disc'), metadata: { name: 'disc', labels: { 'outrigger.io/generated': 'kubernetes' } } }, cla('disc', 2001)]);
      let err: ConnectError | undefined;
      try {
        await api.rollback({ kind: 'Cluster', name: 'disc', toRevision: written });
      } catch (e) {
        err = e as ConnectError;
      }
      expect(err?.code).to.equal(Code.InvalidArgument);
      expect(err?.rawMessage).to.contain('Cluster/disc: metadata.name: generated by discovery (kubernetes) and not writable');
      expect((await api.get({ kind: 'Cluster', name: 'disc' })).resource!.version).to.equal('generated');
    } finally {
      await cp.close();
    }
  });

  describe('overrides (docs/discovery.md#overrides)', () => {
    const GEN = 'outbound|8080||cart.shop.svc.cluster.local';
    const labelled = (d: ResourceDocument): ResourceDocument => ({ ...d, metadata: { ...d.metadata, labels: { 'outrigger.io/generated': 'kubernetes' } } });
    const override = (name: string, target: string, spec: JsonObject): JsonObject => ({ apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name, annotations: { 'outrigger.io/overrides': target } }, spec });
    const clustersOf = (r: DiscoveryResponse): Record<string, Cluster> => Object.fromEntries(r.resources.map((a) => anyUnpack(a, ClusterSchema)!).map((c) => [c.name, c]));

    it('generated resources are not writable; an override may not set where endpoints come from; one naming no generated cluster is kept with a warning', async () => {
      const generated = new GeneratedResourceSet([labelled(edsCluster(GEN)), labelled(cla(GEN, 2001))]);
      const cp = await startTestControlPlane({ debounceMs: 10, generated });
      const api = client(cp.address);
      try {
        const rejected = async (docs: JsonObject[]): Promise<string> => {
          try {
            await api.apply({ documents: docs });
          } catch (err) {
            expect((err as ConnectError).code).to.equal(Code.InvalidArgument);
            return (err as ConnectError).rawMessage;
          }
          throw new Error('accepted');
        };
        expect(await rejected([edsCluster(GEN) as unknown as JsonObject])).to.contain(`Cluster/${GEN}: metadata.name: generated by discovery (kubernetes) and not writable`);
        expect(await rejected([cla(GEN, 1) as unknown as JsonObject])).to.contain('not writable');
        expect(await rejected([override('t', GEN, { type: 'DISCOVERY_TYPE_STATIC', endpoints: [{ address: { host: '127.0.0.1', port: 1 } }] })]))
          .to.contain('Cluster/t: spec.type: an override cannot set type')
          .and.contain('Cluster/t: spec.endpoints: an override cannot set endpoints');
        expect(await rejected([override('t', GEN, { dns: { name: 'x.example', port: 80 } })])).to.contain('Cluster/t: spec.dns');
        expect(await rejected([{ ...override('t', GEN, {}), kind: 'RouteConfiguration' }])).to.contain('only a Cluster can override');
        // Validated as what it becomes: a bad LB setting is an error at its path.
        expect(await rejected([override('t', GEN, { lbPolicy: 'LB_POLICY_NOPE' })])).to.contain('Cluster/t');

        // Visible through get/list (read-only, version "generated"); a get dump re-applied unchanged is no write.
        const got = await api.get({ kind: 'Cluster', name: GEN });
        expect(got.resource!.version).to.equal('generated');
        expect((got.resource!.document as unknown as ResourceDocument).metadata.labels).to.deep.equal({ 'outrigger.io/generated': 'kubernetes' });
        const listed = await api.list({});
        expect(listed.resources.map((r) => `${(r.document as unknown as ResourceDocument).kind}/${r.version}`)).to.deep.equal(['Cluster/generated', 'ClusterLoadAssignment/generated']);
        const again = await api.apply({ documents: listed.resources.map((r) => r.document as unknown as JsonObject) });
        expect(again.unchanged).to.deep.equal([`Cluster/${GEN}`, `ClusterLoadAssignment/${GEN}`]);
        expect(again.resources).to.deep.equal([]);

        const res = await api.apply({ documents: [override('later', 'outbound|80||nope.shop.svc.cluster.local', { lbPolicy: 'LB_POLICY_RANDOM' })] });
        expect(res.warnings.map((w) => `${w.document}: ${w.path}: ${w.message}`)).to.deep.equal([
          'Cluster/later: metadata.annotations["outrigger.io/overrides"]: "outbound|80||nope.shop.svc.cluster.local" is not a generated Cluster (now): the override is kept and applies when it is generated',
        ]);
      } finally {
        await cp.close();
      }
    });

    it("the effective generated cluster carries the override's settings and discovery's endpoints; the override is not served by its own name; deleting it restores the generated settings", async () => {
      const generated = new GeneratedResourceSet([labelled(edsCluster(GEN)), labelled(cla(GEN, 2001))]);
      const cp = await startTestControlPlane({ debounceMs: 10, generated });
      const api = client(cp.address);
      const s = new LightSotw(transportFor(cp.address));
      try {
        const applied = await api.apply({
          documents: [
            override('cart-policy', GEN, {
              lbPolicy: 'LB_POLICY_LEAST_REQUEST',
              connectTimeout: '2s',
              circuitBreakers: { maxRequests: 7 },
              outlierDetection: { consecutive5xx: 3 },
              healthCheck: { interval: '5s', timeout: '1s', unhealthyThreshold: 2, healthyThreshold: 1, http: { path: '/healthz' } },
            }),
          ],
        });
        expect(applied.warnings).to.deep.equal([]);
        s.send({ node: nodeOf('ov-1'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
        const first = await s.next();
        const c = clustersOf(first);
        expect(Object.keys(c)).to.deep.equal([GEN]); // not "cart-policy"
        expect(c[GEN]!.type).to.equal(Cluster_DiscoveryType.EDS);
        expect(c[GEN]!.lbPolicy).to.equal(Cluster_LbPolicy.LEAST_REQUEST);
        expect(c[GEN]!.circuitBreakers?.maxRequests).to.equal(7);
        expect(c[GEN]!.outlierDetection?.consecutive5xx).to.equal(3);
        expect(c[GEN]!.healthCheck?.checker.case).to.equal('http');
        s.ack(first, ['*']);
        s.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNames: [GEN] });
        const eds = await s.next();
        expect(endpointPorts(eds)).to.deep.equal({ [GEN]: [2001] });
        s.ack(eds, [GEN]);

        // Discovery moves the endpoints: only the assignment is pushed; the cluster keeps the override.
        generated.replace([labelled(edsCluster(GEN)), labelled(cla(GEN, 2002))]);
        const moved = await s.next();
        expect(moved.typeUrl).to.equal(TYPE('ClusterLoadAssignment'));
        expect(endpointPorts(moved)).to.deep.equal({ [GEN]: [2002] });
        s.ack(moved, [GEN]);

        const stored = await api.get({ kind: 'Cluster', name: 'cart-policy' });
        await api.delete({ kind: 'Cluster', name: 'cart-policy', expectedVersion: stored.resource!.version });
        const back = await s.next();
        expect(back.typeUrl).to.equal(TYPE('Cluster'));
        expect(clustersOf(back)[GEN]!.lbPolicy).to.equal(Cluster_LbPolicy.UNSPECIFIED);
      } finally {
        s.close();
        await cp.close();
      }
    });
  });
});

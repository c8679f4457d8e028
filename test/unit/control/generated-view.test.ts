import { expect } from 'chai';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { ClusterLoadAssignmentSchema } from '../../../src/gen/outrigger/config/v1/cluster_pb.js';
import type { ResourceDocument } from '../../../src/config/snapshot.js';
import { applyDocuments } from '../../../src/control/server/resource-state.js';
import { EMPTY_STATE } from '../../../src/control/store/store-state.js';
import { buildNodeView, NodeViewCache, type NodeView } from '../../../src/control/server/node-view.js';
import type { GeneratedResource, GeneratedSet } from '../../../src/control/server/generated-resources.js';
import { cluster, listener, prefixRoute, routes } from '../../support/config-docs.js';

const eds = (name: string): GeneratedResource => ({ apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name }, spec: { type: 'DISCOVERY_TYPE_EDS' } });
const cla = (name: string, port: number, selector?: { nodeId: string }): GeneratedResource => ({
  apiVersion: 'outrigger.io/v1',
  kind: 'ClusterLoadAssignment',
  metadata: selector ? { name, selector } : { name },
  spec: { endpoints: [{ address: { host: '127.0.0.1', port } }] },
});
const set = (epoch: number, resources: GeneratedResource[]): GeneratedSet => ({ epoch, resources, changedAtMs: 1000 + epoch });
/** The endpoint ports a view serves for ClusterLoadAssignment `name` (read off its wire form). */
const ports = (view: NodeView | undefined, name: string): number[] | undefined => {
  const w = view?.byKind.get('ClusterLoadAssignment')?.get(name);
  return w && anyUnpack(w.any, ClusterLoadAssignmentSchema)!.endpoints.map((e) => e.address!.port);
};

describe('control: node views with generated resources', () => {
  const opts = { allowEphemeralPorts: true };
  // The operator pins the endpoints of `disc` for the canary nodes only.
  const docs = [
    listener('main'),
    routes('main', [prefixRoute('/', 'web')]),
    cluster('web', [1000]),
    { ...eds('disc'), metadata: { name: 'disc', selector: { nodeId: 'canary-*' } } },
    { ...cla('disc', 3000), metadata: { name: 'disc', selector: { nodeId: 'canary-*' } } },
  ];
  const applied = applyDocuments(EMPTY_STATE, { documents: docs, who: 't', nowMs: 1 }, opts);
  if (!applied.ok) throw new Error(JSON.stringify(applied.errors));
  const state = applied.state;
  const canary = { id: 'canary-1', cluster: 'c', labels: {} };
  const plain = { id: 'web-1', cluster: 'c', labels: {} };

  it("the operator's resource wins where it reaches the node; elsewhere the generated one is served", () => {
    const gen = set(1, [eds('disc'), cla('disc', 2000)]);
    const c = buildNodeView(state, canary, opts, gen).view!;
    const p = buildNodeView(state, plain, opts, gen).view!;
    expect(ports(c, 'disc')).to.deep.equal([3000]);
    expect(ports(p, 'disc')).to.deep.equal([2000]);
    expect(p.generation).to.equal(1);
    expect(p.changedAtMs).to.equal(1001); // the generated change is later than the stored one
  });

  it('a generated ClusterLoadAssignment joins only views that have its cluster', () => {
    const v = buildNodeView(state, plain, opts, set(1, [cla('elsewhere', 2000)]));
    expect(v.errors).to.deep.equal([]);
    expect(v.view!.byKind.get('ClusterLoadAssignment')!.has('elsewhere')).to.equal(false);
  });

  it('the cache rebuilds on a new generated epoch without a new store revision', () => {
    const cache = new NodeViewCache(opts, () => {});
    cache.retain(plain);
    const a = cache.get(state, plain, set(1, [eds('disc'), cla('disc', 2000)]))!;
    expect(cache.get(state, plain, set(1, [eds('disc'), cla('disc', 2000)]))).to.equal(a);
    const b = cache.get(state, plain, set(2, [eds('disc'), cla('disc', 2001)]))!;
    expect(b).not.to.equal(a);
    expect(b.revision).to.equal(a.revision);
    expect(ports(b, 'disc')).to.deep.equal([2001]);
    // An inconsistent generated set keeps the node's last good view.
    const bad: ResourceDocument = cla('disc', 0);
    expect(cache.get(state, plain, set(3, [eds('disc'), bad]))).to.equal(b);
  });
});

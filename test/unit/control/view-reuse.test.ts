import { expect } from 'chai';
import { create, toBinary } from '@bufbuild/protobuf';
import type { ResourceDocument } from '../../../src/config/snapshot.js';
import { DocumentForms } from '../../../src/control/server/document-forms.js';
import type { GeneratedResource, GeneratedSet } from '../../../src/control/server/generated-resources.js';
import { NodeViewCache } from '../../../src/control/server/node-view.js';
import { SotwRequestDecoder } from '../../../src/control/server/sotw-request-decoder.js';
import { EMPTY_STATE } from '../../../src/control/store/store-state.js';
import { DiscoveryRequestSchema } from '../../../src/gen/outrigger/control/v1/discovery_pb.js';

const eds = (name: string): GeneratedResource => ({ apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name }, spec: { type: 'DISCOVERY_TYPE_EDS' } });
const cla = (name: string, port: number): GeneratedResource => ({
  apiVersion: 'outrigger.io/v1',
  kind: 'ClusterLoadAssignment',
  metadata: { name },
  spec: { endpoints: [{ address: { host: '127.0.0.1', port } }] },
});
const set = (epoch: number, resources: GeneratedResource[]): GeneratedSet => ({ epoch, resources, changedAtMs: epoch });

describe('control: a change costs what changed', () => {
  it('DocumentForms decodes and packs a document object once; a failure is decoded again with its own index', () => {
    const forms = new DocumentForms();
    const doc = cla('a', 2001);
    const first = forms.decode(doc, 0);
    const again = forms.decode(doc, 5);
    if (!first.ok || !again.ok) throw new Error('decode failed');
    expect(again.value.message).to.equal(first.value.message); // not decoded again
    expect(again.value.source).to.deep.equal({ index: 5 });
    expect(forms.wire(doc, again.value)).to.equal(forms.wire(doc, first.value));
    // An equal document of another object is its own entry (objects are the key; documents are immutable).
    const twin = forms.decode(cla('a', 2001), 0);
    expect(twin.ok && twin.value.message).not.to.equal(first.value.message);

    const bad = { apiVersion: 'outrigger.io/v1', kind: 'Nope', metadata: {} } as unknown as ResourceDocument;
    const e1 = forms.decode(bad, 1);
    const e2 = forms.decode(bad, 7);
    expect(e1.ok || e1.errors[0]!.document).to.equal('<input>#1');
    expect(e2.ok || e2.errors[0]!.document).to.equal('<input>#7');
  });

  it("a new generated epoch reuses the unchanged documents' wire forms; only the changed one is new", () => {
    const cache = new NodeViewCache({ allowEphemeralPorts: true }, () => {});
    const node = { id: 'n-1', cluster: 'c', labels: {} };
    cache.retain(node); // a node with an open stream keeps its last good view
    const docs = [eds('a'), eds('b'), cla('a', 2001), cla('b', 2002)];
    const v1 = cache.get(EMPTY_STATE, node, set(1, docs))!;
    const next = [docs[0]!, docs[1]!, docs[2]!, cla('b', 2012)];
    const v2 = cache.get(EMPTY_STATE, node, set(2, next))!;
    expect(v2).not.to.equal(v1);
    const wire = (v: typeof v1, kind: 'Cluster' | 'ClusterLoadAssignment', name: string) => v.byKind.get(kind)!.get(name);
    expect(wire(v2, 'ClusterLoadAssignment', 'a')).to.equal(wire(v1, 'ClusterLoadAssignment', 'a'));
    expect(wire(v2, 'Cluster', 'b')).to.equal(wire(v1, 'Cluster', 'b'));
    expect(wire(v2, 'ClusterLoadAssignment', 'b')).not.to.equal(wire(v1, 'ClusterLoadAssignment', 'b'));
    expect(wire(v2, 'ClusterLoadAssignment', 'b')!.hash).not.to.equal(wire(v1, 'ClusterLoadAssignment', 'b')!.hash);
    expect(v2.versions.get('Cluster')).to.equal(v1.versions.get('Cluster'));
    expect(v2.versions.get('ClusterLoadAssignment')).not.to.equal(v1.versions.get('ClusterLoadAssignment'));
    // An inconsistent set still fails as a whole: an assignment without a port keeps the last good view.
    expect(cache.get(EMPTY_STATE, node, set(3, [...next.slice(0, 3), cla('b', 0)]))).to.equal(v2);
  });

  describe('SotwRequestDecoder', () => {
    const TYPE = 'type.googleapis.com/outrigger.config.v1.ClusterLoadAssignment';
    const req = (names: string[], nonce: string) => toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: TYPE, versionInfo: 'v', responseNonce: nonce, resourceNames: names }));

    it('an ACK repeating its names gets the previous array; other names, or another type, decode anew', () => {
      const d = new SotwRequestDecoder();
      const a = d.decode(req(['x', 'y'], '1-1'));
      const b = d.decode(req(['x', 'y'], '1-2'));
      expect(b.resourceNames).to.equal(a.resourceNames);
      expect(b.responseNonce).to.equal('1-2');
      expect(b.typeUrl).to.equal(TYPE);
      expect(b.versionInfo).to.equal('v');
      const c = d.decode(req(['x', 'z'], '1-3'));
      expect(c.resourceNames).to.deep.equal(['x', 'z']);
      const other = d.decode(toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: 'other', resourceNames: ['x', 'z'] })));
      expect(other.resourceNames).not.to.equal(c.resourceNames);
      expect(d.decode(req([], '1-4')).resourceNames).to.deep.equal([]);
    });

    it('names split by another field decode whole; a malformed message throws as fromBinary does', () => {
      const d = new SotwRequestDecoder();
      const part = (init: Parameters<typeof create<typeof DiscoveryRequestSchema>>[1]) => toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, init));
      const split = Buffer.concat([part({ resourceNames: ['a'] }), part({ typeUrl: TYPE }), part({ resourceNames: ['b'] })]);
      const r = d.decode(split);
      expect(r.resourceNames).to.deep.equal(['a', 'b']);
      expect(r.typeUrl).to.equal(TYPE);
      expect(() => d.decode(Uint8Array.of(0x1a, 0x10, 0x61))).to.throw();
    });
  });
});

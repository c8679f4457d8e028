import { expect } from 'chai';
import http2 from 'node:http2';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import type { ResourceDocument } from '../../src/config/snapshot.js';
import { SOTW_EDS_SUBSETS } from '../../src/control/protocol.js';
import { GeneratedResourceSet } from '../../src/control/server/generated-resources.js';
import { ClusterLoadAssignmentSchema } from '../../src/gen/outrigger/config/v1/cluster_pb.js';
import type { DiscoveryResponse } from '../../src/gen/outrigger/control/v1/discovery_pb.js';
import { startTestControlPlane } from '../support/control-harness.js';
import { waitFor } from '../support/wait.js';
import { RawSotw } from '../support/xds-raw.js';
import { LightSotw, TYPE, nodeOf, transportFor } from '../support/xds-light.js';

const doc = (kind: ResourceDocument['kind'], name: string, spec: ResourceDocument['spec']): ResourceDocument => ({ apiVersion: 'outrigger.io/v1', kind, metadata: { name }, spec });
const eds = (name: string): ResourceDocument => doc('Cluster', name, { type: 'DISCOVERY_TYPE_EDS' });
const cla = (name: string, port: number): ResourceDocument => doc('ClusterLoadAssignment', name, { endpoints: [{ address: { host: '127.0.0.1', port } }] });
const NAMES = ['a', 'b', 'c'];
const world = (a: number, b: number, c: number): ResourceDocument[] => [eds('a'), eds('b'), eds('c'), cla('a', a), cla('b', b), cla('c', c)];

/** name → endpoint ports of each assignment in a response, read off the wire. */
const ports = (r: DiscoveryResponse): Record<string, number[]> =>
  Object.fromEntries(r.resources.map((x) => anyUnpack(x, ClusterLoadAssignmentSchema)!).map((m) => [m.name, m.endpoints.map((e) => e.address!.port)]));

/** One SotW client, raw HTTP/2 (the sidecars' transport) or through connect (gRPC-Web/Connect's path). */
interface Client {
  send(req: Parameters<LightSotw['send']>[0]): void;
  ack(r: DiscoveryResponse, names: string[]): void;
  next(): Promise<DiscoveryResponse>;
  close(): void;
}

function rawClient(address: string): Client {
  const session = http2.connect(`http://${address}`);
  session.on('error', () => {});
  const s = new RawSotw(session);
  const got: DiscoveryResponse[] = [];
  let wake: (() => void) | undefined;
  s.onResponse = (r) => {
    got.push(r);
    wake?.();
  };
  return {
    send: (req) => s.send(req),
    ack: (r, names) => s.ack(r, names),
    next: async () => {
      while (got.length === 0) await new Promise<void>((r) => (wake = r));
      return got.shift()!;
    },
    close: () => {
      s.close();
      session.destroy();
    },
  };
}

function connectClient(address: string): Client {
  const s = new LightSotw(transportFor(address));
  return { send: (req) => s.send(req), ack: (r, names) => s.ack(r, names), next: () => s.next(), close: () => s.close() };
}

/**
 * SotW EDS subsets (PROTOCOLS.md b1 rule 7): a sidecar announcing
 * SOTW_EDS_SUBSETS gets only the assignments that changed since the response
 * it last ACKed; after an un-ACKed or NACKed response, and for a sidecar
 * without the feature, every subscribed assignment. The version is always
 * the whole set's.
 */
describe('control plane: SotW EDS subsets', function () {
  this.timeout(15000);

  for (const [transport, open] of [
    ['raw HTTP/2', rawClient],
    ['connect', connectClient],
  ] as const) {
    it(`${transport}: only the changed assignments after an ACK; the whole set after an un-ACKed or NACKed response`, async () => {
      const generated = new GeneratedResourceSet(world(2001, 2002, 2003));
      const cp = await startTestControlPlane({ debounceMs: 10, generated });
      const s = open(cp.address);
      // The control plane has read the ACK (a change made before it would find the response un-ACKed).
      const acked = (): Promise<void> => waitFor(() => cp.plane.statusOf().every((x) => x.synced), 'the ACK at the control plane');
      try {
        s.send({ node: { ...nodeOf('subsets-1'), clientFeatures: [SOTW_EDS_SUBSETS] }, typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
        s.ack(await s.next(), ['*']);
        s.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNames: NAMES });
        const first = await s.next();
        expect(ports(first)).to.deep.equal({ a: [2001], b: [2002], c: [2003] }); // nothing ACKed yet: all
        s.ack(first, NAMES);
        await acked();

        generated.replace(world(2001, 2012, 2003));
        const second = await s.next();
        expect(ports(second)).to.deep.equal({ b: [2012] });
        expect(second.versionInfo).not.to.equal(first.versionInfo);
        s.ack(second, NAMES);
        await acked();

        // Not ACKed: what the sidecar holds is not known exactly, so the next one carries everything.
        generated.replace(world(2021, 2012, 2003));
        const third = await s.next();
        expect(ports(third)).to.deep.equal({ a: [2021] });
        generated.replace(world(2021, 2012, 2033));
        const fourth = await s.next();
        expect(ports(fourth)).to.deep.equal({ a: [2021], b: [2012], c: [2033] });

        // NACKed: the whole set again on the next change.
        s.send({ typeUrl: TYPE('ClusterLoadAssignment'), versionInfo: second.versionInfo, responseNonce: fourth.nonce, resourceNames: NAMES, errorDetail: { code: 3, message: 'no' } });
        generated.replace(world(2021, 2042, 2033));
        const fifth = await s.next();
        expect(ports(fifth)).to.deep.equal({ a: [2021], b: [2042], c: [2033] });
        s.ack(fifth, NAMES);
        await acked();

        // A new name subscribed: its assignment (and nothing unchanged) comes.
        generated.replace([...world(2021, 2042, 2033), eds('d'), cla('d', 2004)]);
        s.ack(await s.next(), ['*']); // the Cluster d
        s.send({ typeUrl: TYPE('ClusterLoadAssignment'), versionInfo: fifth.versionInfo, responseNonce: fifth.nonce, resourceNames: [...NAMES, 'd'] });
        const sixth = await s.next();
        expect(ports(sixth)).to.deep.equal({ d: [2004] });
      } finally {
        s.close();
        await cp.close();
      }
    });
  }

  it('a sidecar without the feature gets every subscribed assignment in each response', async () => {
    const generated = new GeneratedResourceSet(world(2001, 2002, 2003));
    const cp = await startTestControlPlane({ debounceMs: 10, generated });
    const s = rawClient(cp.address);
    try {
      s.send({ node: nodeOf('subsets-2'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
      s.ack(await s.next(), ['*']);
      s.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNames: NAMES });
      s.ack(await s.next(), NAMES);
      await waitFor(() => cp.plane.statusOf().every((x) => x.synced), 'the ACK at the control plane');
      generated.replace(world(2001, 2012, 2003));
      expect(ports(await s.next())).to.deep.equal({ a: [2001], b: [2012], c: [2003] });
    } finally {
      s.close();
      await cp.close();
    }
  });
});

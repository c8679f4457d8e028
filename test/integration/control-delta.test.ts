import { expect } from 'chai';
import type { JsonObject } from '../../src/config/snapshot.js';
import { TypeStatus_State } from '../../src/gen/outrigger/control/v1/operator_pb.js';
import type { DeltaDiscoveryResponse, DiscoveryResponse } from '../../src/gen/outrigger/control/v1/discovery_pb.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { client, startTestControlPlane } from '../support/control-harness.js';
import { LightDelta, LightSotw, TYPE, kindOf, nodeOf, transportFor } from '../support/xds-light.js';
import { waitFor } from '../support/wait.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];
type CP = Awaited<ReturnType<typeof startTestControlPlane>>;

const names = (r: DeltaDiscoveryResponse): string[] => r.resources.map((x) => x.name).sort();
const cla = (name: string, ports: number[]): Doc => ({
  apiVersion: 'outrigger.io/v1',
  kind: 'ClusterLoadAssignment',
  metadata: { name },
  spec: { endpoints: ports.map((port) => ({ address: { host: '127.0.0.1', port } })) },
});
const edsCluster = (name: string): Doc => ({ apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name }, spec: { type: 'DISCOVERY_TYPE_EDS' } });
const base = (): Doc[] => [listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [1001]), cluster('api', [1002])];

/**
 * "Nothing is sent" made explicit: the server handles a stream's requests in
 * order, and a push in order after the changes before it, so when the next
 * response is exactly the marker's, nothing was sent before it.
 */
async function expectNextOnly(d: LightDelta, marker: { typeUrl: string; resources?: string[]; removed?: string[] }): Promise<void> {
  const r = await d.next();
  expect({ typeUrl: r.typeUrl, resources: names(r), removed: [...r.removedResources].sort() }).to.deep.equal({
    typeUrl: marker.typeUrl,
    resources: marker.resources ?? [],
    removed: marker.removed ?? [],
  });
  d.ack(r);
}

describe('control plane: delta stream semantics (light client)', function () {
  this.timeout(10000);
  let cp: CP;
  const streams: { close(): void }[] = [];
  const delta = (): LightDelta => {
    const d = new LightDelta(transportFor(cp.address));
    streams.push(d);
    return d;
  };
  beforeEach(async () => {
    cp = await startTestControlPlane({ debounceMs: 10 });
    await client(cp.address).apply({ documents: J(...base()) });
  });
  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    await cp.close();
  });

  it('wildcard: everything first, then only what changed; deletions in removed_resources', async () => {
    const api = client(cp.address);
    const d = delta();
    d.send({ node: nodeOf('d-wild'), typeUrl: TYPE('Cluster') }); // legacy wildcard: a first request naming nothing
    const r1 = await d.next();
    expect(names(r1)).to.deep.equal(['api', 'web']);
    expect(r1.removedResources).to.deep.equal([]);
    d.ack(r1);
    await api.apply({ documents: J(cluster('web', [1003])) });
    const r2 = await d.next();
    expect(names(r2)).to.deep.equal(['web']);
    expect(r2.resources[0]!.version).not.to.equal(r1.resources.find((x) => x.name === 'web')!.version);
    d.ack(r2);
    await api.delete({ kind: 'Cluster', name: 'api' });
    const r3 = await d.next();
    expect(r3.resources).to.deep.equal([]);
    expect(r3.removedResources).to.deep.equal(['api']);
    d.ack(r3);
    // Nothing more until the next change: the next response is that change alone.
    await api.apply({ documents: J(cluster('web', [1013])) });
    await expectNextOnly(d, { typeUrl: TYPE('Cluster'), resources: ['web'] });
  });

  it('named: a never-existing name is reported removed, sent when it appears, not after unsubscribe', async () => {
    const api = client(cp.address);
    const d = delta();
    d.send({ node: nodeOf('d-named'), typeUrl: TYPE('ClusterLoadAssignment'), resourceNamesSubscribe: ['x'] });
    const r1 = await d.next();
    expect(r1.resources).to.deep.equal([]);
    expect(r1.removedResources).to.deep.equal(['x']);
    d.ack(r1);
    await api.apply({ documents: J(edsCluster('x'), edsCluster('y'), cla('x', [1004]), cla('y', [1005])) });
    const r2 = await d.next();
    expect(names(r2)).to.deep.equal(['x']); // y is not subscribed
    d.ack(r2);
    d.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNamesUnsubscribe: ['x'] }); // spontaneous: no nonce
    // Marker: a never-existing name is answered at once, so the unsubscribe before it was answered by nothing.
    d.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNamesSubscribe: ['mark'] });
    await expectNextOnly(d, { typeUrl: TYPE('ClusterLoadAssignment'), removed: ['mark'] });
    await api.apply({ documents: J(cla('x', [1006])) });
    // Marker: a later change to a subscribed name is pushed alone, so x's change was not pushed.
    await api.apply({ documents: J(edsCluster('mark'), cla('mark', [1014])) });
    await expectNextOnly(d, { typeUrl: TYPE('ClusterLoadAssignment'), resources: ['mark'] });
    // Endpoints are never wildcard: '*' subscribes nothing (it would bring x and y).
    d.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNamesSubscribe: ['*'] });
    d.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNamesSubscribe: ['mark2'] });
    await expectNextOnly(d, { typeUrl: TYPE('ClusterLoadAssignment'), removed: ['mark2'] });
  });

  it('wildcard plus a named subscription: unsubscribing the named one re-sends it', async () => {
    const d = delta();
    d.send({ node: nodeOf('d-both'), typeUrl: TYPE('Cluster'), resourceNamesSubscribe: ['*', 'web'] });
    const r1 = await d.next();
    expect(names(r1)).to.deep.equal(['api', 'web']);
    d.ack(r1);
    d.send({ typeUrl: TYPE('Cluster'), resourceNamesUnsubscribe: ['web'] });
    const r2 = await d.next();
    expect([...names(r2), ...r2.removedResources]).to.include('web');
    d.ack(r2);
    // Unsubscribing the wildcard too: nothing more is sent for clusters.
    d.send({ typeUrl: TYPE('Cluster'), resourceNamesUnsubscribe: ['*'] });
    // Marker subscriptions: a never-existing name is answered at once (so the unsubscribe was answered by
    // nothing), and when it appears it is pushed alone (so api's change was not pushed).
    d.send({ typeUrl: TYPE('Cluster'), resourceNamesSubscribe: ['mark'] });
    await expectNextOnly(d, { typeUrl: TYPE('Cluster'), removed: ['mark'] });
    await client(cp.address).apply({ documents: J(cluster('api', [1009])) });
    await client(cp.address).apply({ documents: J(cluster('mark', [1015])) });
    await expectNextOnly(d, { typeUrl: TYPE('Cluster'), resources: ['mark'] });
  });

  it('reconnect with initial_resource_versions: only what changed meanwhile, and what is gone', async () => {
    const api = client(cp.address);
    const d1 = delta();
    d1.send({ node: nodeOf('d-re'), typeUrl: TYPE('Cluster'), resourceNamesSubscribe: ['*'] });
    const r1 = await d1.next();
    d1.ack(r1);
    const have = Object.fromEntries(r1.resources.map((x) => [x.name, x.version]));
    d1.close();
    await api.apply({ documents: J(cluster('web', [1007]), cluster('new', [1008])) });
    await api.delete({ kind: 'Cluster', name: 'api' });
    const d2 = delta();
    d2.send({ node: nodeOf('d-re'), typeUrl: TYPE('Cluster'), resourceNamesSubscribe: ['*'], initialResourceVersions: { ...have, ghost: 'v0' } });
    const r2 = await d2.next();
    expect(names(r2)).to.deep.equal(['new', 'web']);
    expect([...r2.removedResources].sort()).to.deep.equal(['api', 'ghost']);
    d2.ack(r2);
    // A reconnect with everything current: no response at all.
    const d3 = delta();
    const now = Object.fromEntries(r2.resources.map((x) => [x.name, x.version]));
    d3.send({ node: nodeOf('d-re2'), typeUrl: TYPE('Cluster'), resourceNamesSubscribe: ['*'], initialResourceVersions: now });
    d3.send({ typeUrl: TYPE('Cluster'), resourceNamesSubscribe: ['mark'] });
    await expectNextOnly(d3, { typeUrl: TYPE('Cluster'), removed: ['mark'] });
  });

  it('nonces: a stale nonce is no ACK, subscription changes count whatever the nonce, NACK by error_detail', async () => {
    const api = client(cp.address);
    const d = delta();
    d.send({ node: nodeOf('d-nonce'), typeUrl: TYPE('Cluster'), resourceNamesSubscribe: ['*'] });
    const r1 = await d.next();
    const state = async (): Promise<TypeStatus_State | undefined> =>
      (await api.status({})).sidecars.find((s) => s.nodeId === 'd-nonce')?.types.find((t) => t.typeUrl === TYPE('Cluster'))?.state;
    d.send({ typeUrl: TYPE('Cluster'), responseNonce: 'not-a-nonce-we-sent' });
    // The next request on the same stream is answered, so the server has handled the stale one before it.
    d.send({ typeUrl: TYPE('ClusterLoadAssignment'), responseNonce: 'stale', resourceNamesSubscribe: ['x'] });
    const r2 = await d.next();
    expect(kindOf(r2.typeUrl)).to.equal('ClusterLoadAssignment');
    expect(r2.removedResources).to.deep.equal(['x']);
    expect(await state()).to.equal(TypeStatus_State.STALE);
    d.send({ typeUrl: TYPE('Cluster'), responseNonce: r1.nonce, errorDetail: { code: 3, message: 'cluster web: no thanks' } });
    await waitFor(async () => (await state()) === TypeStatus_State.ERROR, 'ERROR state');
    const st = (await api.status({})).sidecars.find((s) => s.nodeId === 'd-nonce')!.types.find((t) => t.typeUrl === TYPE('Cluster'))!;
    expect(st.error).to.equal('cluster web: no thanks');
    expect(await cp.registry.getSingleMetricAsString('outrigger_control_nacks_total')).to.match(/nacks_total\{kind="Cluster"\} 1/);
    d.ack(r1);
    await waitFor(async () => (await state()) === TypeStatus_State.SYNCED, 'SYNCED after the ACK');
  });

  it('forgets a node\'s cached view when its last stream closes (SotW and delta)', async () => {
    const s = new LightSotw(transportFor(cp.address));
    streams.push(s);
    s.send({ node: nodeOf('gone-sotw'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
    s.ack(await s.next(), ['*']);
    const d = delta();
    d.send({ node: nodeOf('gone-delta'), typeUrl: TYPE('Cluster') });
    d.ack(await d.next());
    expect(cp.plane.cachedNodeViews).to.equal(2);
    s.close();
    await waitFor(() => cp.plane.cachedNodeViews === 1, 'the SotW node forgotten');
    d.close();
    await waitFor(() => cp.plane.cachedNodeViews === 0, 'the delta node forgotten');
  });

  it('the first request must carry the node', async () => {
    const d = delta();
    d.send({ typeUrl: TYPE('Cluster') });
    let err: Error | undefined;
    try {
      await d.next();
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/must carry the node/);
  });
});

describe('control plane: push order (light clients)', function () {
  this.timeout(10000);
  let cp: CP;
  const open: { close(): void }[] = [];
  // A long quiet period so that an apply and two deletes land in one push.
  beforeEach(async () => {
    cp = await startTestControlPlane({ debounceMs: 300 });
    await client(cp.address).apply({ documents: J(...base()) });
  });
  afterEach(async () => {
    for (const s of open.splice(0)) s.close();
    await cp.close();
  });

  let marks = 0;
  const SUBS: Record<string, string[]> = { Cluster: ['*'], ClusterLoadAssignment: ['eds1'], Listener: ['*'], RouteConfiguration: ['main', 'r2'] };

  async function sotw(id: string): Promise<LightSotw> {
    const s = new LightSotw(transportFor(cp.address));
    open.push(s);
    let first = true;
    for (const [kind, n] of Object.entries(SUBS)) {
      s.send({ node: first ? nodeOf(id) : undefined, typeUrl: TYPE(kind), resourceNames: n });
      first = false;
    }
    // Initial state, one response per type (eds1 does not exist yet: an empty set).
    for (let i = 0; i < 4; i++) {
      const r = await s.next();
      s.ack(r, SUBS[kindOf(r.typeUrl)]!);
    }
    // (An extra initial response would be read first by drain() and fail the order checks.)
    return s;
  }

  async function deltaAll(id: string): Promise<LightDelta> {
    const d = new LightDelta(transportFor(cp.address));
    open.push(d);
    let first = true;
    for (const [kind, n] of Object.entries(SUBS)) {
      d.send({ node: first ? nodeOf(id) : undefined, typeUrl: TYPE(kind), resourceNamesSubscribe: n });
      first = false;
    }
    for (let i = 0; i < 4; i++) d.ack(await d.next());
    return d;
  }

  async function drain<T extends DiscoveryResponse | DeltaDiscoveryResponse>(s: LightSotw | LightDelta, n: number, ack: (r: T) => void): Promise<T[]> {
    const out: T[] = [];
    for (let i = 0; i < n; i++) {
      const r = (await s.next(3000)) as T;
      ack(r);
      out.push(r);
    }
    // Nothing more in this push: a marker change to clusters alone comes next (streams drained later
    // may first see an earlier drain's marker, which adds only a marker cluster too).
    const lastClusters = out.filter((r) => kindOf(r.typeUrl) === 'Cluster').at(-1)?.resources.length;
    await client(cp.address).apply({ documents: J(cluster(`mark-${++marks}`, [1020 + marks])) });
    const next = await s.next(3000);
    expect(kindOf(next.typeUrl), 'the marker push').to.equal('Cluster');
    if ('removedResources' in next) {
      expect(next.removedResources).to.deep.equal([]);
      expect(next.resources.every((x) => x.name.startsWith('mark-')), 'only marker clusters').to.equal(true);
    } else if (lastClusters !== undefined) {
      expect(next.resources.length, 'the clusters and one marker').to.equal(lastClusters + 1);
    }
    return out;
  }

  it('one change touching every kind goes out clusters → endpoints → listeners → routes (SotW and delta)', async () => {
    const s = await sotw('order-sotw');
    const d = await deltaAll('order-delta');
    await client(cp.address).apply({
      documents: J(edsCluster('eds1'), cla('eds1', [1010]), listener('l2', { routeConfig: 'r2' }), routes('r2', [prefixRoute('/', 'eds1')])),
    });
    const so = await drain<DiscoveryResponse>(s, 4, (r) => s.ack(r, SUBS[kindOf(r.typeUrl)]!));
    expect(so.map((r) => kindOf(r.typeUrl))).to.deep.equal(['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration']);
    const de = await drain<DeltaDiscoveryResponse>(d, 4, (r) => d.ack(r));
    expect(de.map((r) => kindOf(r.typeUrl))).to.deep.equal(['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration']);
    expect(de.map((r) => names(r))).to.deep.equal([['eds1'], ['eds1'], ['l2'], ['r2']]);
  });

  it('removals go last, after the routes that stopped referring to them (make before break)', async () => {
    const api = client(cp.address);
    await api.apply({ documents: J(listener('l2', { routeConfig: 'r2' }), routes('r2', [prefixRoute('/', 'api')])) });
    const s = await sotw('mbb-sotw');
    const d = await deltaAll('mbb-delta');
    // One debounced push: main's route moves from web to api, web and l2 go away.
    await api.apply({ documents: J(routes('main', [prefixRoute('/', 'api')])) });
    await api.delete({ kind: 'Cluster', name: 'web' });
    await api.delete({ kind: 'Listener', name: 'l2' });
    const so = await drain<DiscoveryResponse>(s, 5, (r) => s.ack(r, SUBS[kindOf(r.typeUrl)]!));
    const sNames = (r: DiscoveryResponse): string => `${kindOf(r.typeUrl)}:${r.resources.length}`;
    // Clusters and listeners first still hold what is going away; then the routes; then the final sets.
    expect(so.map(sNames)).to.deep.equal(['Cluster:2', 'Listener:2', 'RouteConfiguration:2', 'Listener:1', 'Cluster:1']);
    const de = await drain<DeltaDiscoveryResponse>(d, 3, (r) => d.ack(r));
    expect(de.map((r) => `${kindOf(r.typeUrl)}:+${names(r).join(',')}:-${r.removedResources.join(',')}`)).to.deep.equal([
      'RouteConfiguration:+main:-',
      'Listener:+:-l2',
      'Cluster:+:-web',
    ]);
  });
});

import { expect } from 'chai';
import type { JsonObject } from '../../src/config/snapshot.js';
import { PROTOCOL_VERSION } from '../../src/control/protocol.js';
import { TypeStatus_State } from '../../src/gen/outrigger/control/v1/operator_pb.js';
import type { DiscoveryResponse } from '../../src/gen/outrigger/control/v1/discovery_pb.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { client, startTestControlPlane } from '../support/control-harness.js';
import { LightSotw, TYPE, nodeOf, transportFor } from '../support/xds-light.js';
import { waitFor } from '../support/wait.js';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { ClusterSchema } from '../../src/gen/outrigger/config/v1/cluster_pb.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];
type CP = Awaited<ReturnType<typeof startTestControlPlane>>;

/**
 * "Nothing is sent" made explicit: the server answers a stream's requests in
 * order (and pushes in order after the changes before them), so when the next
 * response is of the marker's type, nothing was sent before it.
 */
async function expectNextOfType(s: LightSotw, kind: string): Promise<DiscoveryResponse> {
  const r = await s.next();
  expect(r.typeUrl, 'the marker response comes next').to.equal(TYPE(kind));
  return r;
}

/** Names of the clusters in a SotW response (read off the wire: the Anys). */
const clusterNames = (r: DiscoveryResponse): string[] => r.resources.map((a) => anyUnpack(a, ClusterSchema)!.name).sort();

/**
 * State-of-the-world rules of PROTOCOLS.md b1 on the server, with a light
 * client on a real gRPC stream: ACK/NACK by nonce and error_detail, stale
 * nonces ignored (also their subscription changes), wildcard only for
 * CDS/LDS and only until a name (including "*") was sent, a newer request
 * superseding the subscription, versions across reconnects, and version
 * negotiation (one minor older is served).
 */
describe('control plane: SotW stream rules (light client)', function () {
  this.timeout(10000);
  let cp: CP;
  const open: LightSotw[] = [];
  const sotw = (): LightSotw => {
    const s = new LightSotw(transportFor(cp.address));
    open.push(s);
    return s;
  };
  const typeState = async (node: string, kind: string): Promise<{ state?: TypeStatus_State; error?: string; acked?: string }> => {
    const t = (await client(cp.address).status({})).sidecars.find((s) => s.nodeId === node)?.types.find((x) => x.typeUrl === TYPE(kind));
    return { state: t?.state, error: t?.error, acked: t?.versionAcked };
  };
  beforeEach(async () => {
    cp = await startTestControlPlane({ debounceMs: 10 });
    await client(cp.address).apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [1001]), cluster('api', [1002])) });
  });
  afterEach(async () => {
    for (const s of open.splice(0)) s.close();
    await cp.close();
  });

  it('ACK by the latest nonce; a stale nonce is ignored (no ACK, no subscription change); NACK by error_detail even with the sent version', async () => {
    const api = client(cp.address);
    const s = sotw();
    s.send({ node: nodeOf('s-nonce'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
    const r1 = await s.next();
    expect(clusterNames(r1)).to.deep.equal(['api', 'web']);
    await api.apply({ documents: J(cluster('web', [1003])) });
    const r2 = await s.next();
    expect(r2.nonce).not.to.equal(r1.nonce);
    // An "ACK" of r2's version on r1's (now stale) nonce is no ACK.
    s.send({ typeUrl: TYPE('Cluster'), versionInfo: r2.versionInfo, responseNonce: r1.nonce, resourceNames: ['*'] });
    // Nor is a subscription change on a stale nonce: it would have sent {web} alone.
    s.send({ typeUrl: TYPE('Cluster'), versionInfo: r2.versionInfo, responseNonce: r1.nonce, resourceNames: ['web'] });
    // Marker: a first request for listeners is answered at once.
    s.send({ typeUrl: TYPE('Listener'), resourceNames: ['*'] });
    await expectNextOfType(s, 'Listener');
    expect((await typeState('s-nonce', 'Cluster')).state).to.equal(TypeStatus_State.STALE);
    s.ack(r2, ['*']);
    await waitFor(async () => (await typeState('s-nonce', 'Cluster')).state === TypeStatus_State.SYNCED, 'SYNCED after the ACK on the latest nonce');
    expect((await typeState('s-nonce', 'Cluster')).acked).to.equal(r2.versionInfo);

    // A NACK carrying the version just sent (a client that got it wrong): error_detail decides, not the version.
    await api.apply({ documents: J(cluster('web', [1004])) });
    const r3 = await s.next();
    s.send({ typeUrl: TYPE('Cluster'), versionInfo: r3.versionInfo, responseNonce: r3.nonce, resourceNames: ['*'], errorDetail: { code: 3, message: 'Cluster/web: spec.endpoints: no thanks' } });
    await waitFor(async () => (await typeState('s-nonce', 'Cluster')).state === TypeStatus_State.ERROR, 'ERROR after the NACK');
    expect((await typeState('s-nonce', 'Cluster')).error).to.equal('Cluster/web: spec.endpoints: no thanks');
    // A NACK is not answered with the same set again. Marker: a first request for routes.
    s.send({ typeUrl: TYPE('RouteConfiguration'), resourceNames: ['main'] });
    await expectNextOfType(s, 'RouteConfiguration');

    // A later request on that nonce without error_detail, still naming the old version (e.g. only a
    // subscription refresh), is not an ACK of what was NACKed: the ERROR stays until the sent version is ACKed.
    s.send({ typeUrl: TYPE('Cluster'), versionInfo: r2.versionInfo, responseNonce: r3.nonce, resourceNames: ['*'] });
    // Marker: a first request for endpoints (of a name that does not exist: an empty set).
    s.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNames: ['nope'] });
    await expectNextOfType(s, 'ClusterLoadAssignment');
    expect(await typeState('s-nonce', 'Cluster')).to.include({ state: TypeStatus_State.ERROR, error: 'Cluster/web: spec.endpoints: no thanks', acked: r2.versionInfo });
    s.ack(r3, ['*']);
    await waitFor(async () => (await typeState('s-nonce', 'Cluster')).state === TypeStatus_State.SYNCED, 'SYNCED once the sent version is ACKed');
  });

  it('wildcard: empty names on a fresh stream (CDS/LDS only); once any name — "*" included — was sent, empty unsubscribes; a newer request supersedes', async () => {
    const api = client(cp.address);
    const s = sotw();
    s.send({ node: nodeOf('s-wild'), typeUrl: TYPE('Cluster'), resourceNames: [] }); // legacy wildcard
    const c1 = await s.next();
    expect(clusterNames(c1)).to.deep.equal(['api', 'web']);
    // Endpoints are never wildcard: neither empty nor "*" subscribes anything.
    s.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNames: [] });
    s.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNames: ['*'] });
    // Listeners by "*", then an ACK with an empty list: that is an unsubscription now. (The listeners'
    // response is also the marker: no endpoints response came before it.)
    s.send({ typeUrl: TYPE('Listener'), resourceNames: ['*'] });
    const l1 = await expectNextOfType(s, 'Listener');
    s.ack(l1, []);
    // Clusters: a newer request naming one cluster supersedes the wildcard.
    s.ack(c1, ['web']);
    const c2 = await s.next();
    expect(c2.typeUrl).to.equal(TYPE('Cluster'));
    expect(clusterNames(c2)).to.deep.equal(['web']);
    s.ack(c2, []); // named before: empty = unsubscribe from everything
    // Marker: routes stay subscribed, and a push goes clusters → listeners → routes, so when the routes
    // come first, neither the changed cluster nor the changed listener was sent.
    s.send({ typeUrl: TYPE('RouteConfiguration'), resourceNames: ['main'] });
    s.ack(await expectNextOfType(s, 'RouteConfiguration'), ['main']);
    await api.apply({ documents: J(cluster('web', [1005]), listener('main', { detectTimeout: '0.3s' }), routes('main', [prefixRoute('/', 'api')])) });
    await expectNextOfType(s, 'RouteConfiguration');
  });

  it('reconnect: the last version sent in the first request avoids a resend when current; an older one gets the current set', async () => {
    const s1 = sotw();
    s1.send({ node: nodeOf('s-re'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
    const r1 = await s1.next();
    s1.ack(r1, ['*']);
    s1.close();
    const s2 = sotw();
    s2.send({ node: nodeOf('s-re'), typeUrl: TYPE('Cluster'), resourceNames: ['*'], versionInfo: r1.versionInfo });
    s2.send({ typeUrl: TYPE('Listener'), resourceNames: ['*'] }); // marker
    await expectNextOfType(s2, 'Listener');
    await waitFor(async () => (await typeState('s-re', 'Cluster')).state === TypeStatus_State.SYNCED, 'SYNCED on the version it already has');
    const s3 = sotw();
    s3.send({ node: nodeOf('s-re-old'), typeUrl: TYPE('Cluster'), resourceNames: ['*'], versionInfo: 'an-old-version' });
    const r3 = await s3.next();
    expect(r3.versionInfo).to.equal(r1.versionInfo);
    expect(clusterNames(r3)).to.deep.equal(['api', 'web']);
  });

  it('the node: required on the first request, may not change later', async () => {
    const s = sotw();
    s.send({ typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
    const err1 = await s.next().then(() => undefined, (e: Error) => e);
    expect(err1?.message).to.match(/must carry the node/);
    const t = sotw();
    t.send({ node: nodeOf('s-node-a'), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
    t.ack(await t.next(), ['*']);
    t.send({ node: nodeOf('s-node-b'), typeUrl: TYPE('Listener'), resourceNames: ['*'] });
    const err2 = await t.next().then(() => undefined, (e: Error) => e);
    expect(err2?.message).to.match(/node changed/);
  });

  it('version negotiation: a sidecar one minor older is served and listed with its version; another major or a newer minor is refused', async () => {
    const [major, minor] = PROTOCOL_VERSION.split('.').map(Number) as [number, number];
    const node = (id: string, version: string) => ({ ...nodeOf(id), userAgentVersionType: { case: 'userAgentVersion' as const, value: version } });
    const olderVersion = minor > 0 ? `${major}.${minor - 1}.7` : undefined;
    if (olderVersion) {
      const older = sotw();
      older.send({ node: node('s-older', olderVersion), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
      const r = await older.next();
      expect(clusterNames(r)).to.deep.equal(['api', 'web']);
      older.ack(r, ['*']);
      await waitFor(async () => (await typeState('s-older', 'Cluster')).state === TypeStatus_State.SYNCED, 'older sidecar SYNCED');
      const st = (await client(cp.address).status({})).sidecars.find((x) => x.nodeId === 's-older')!;
      expect(st.sidecarVersion).to.equal(olderVersion);
    }
    for (const v of [`${major + 1}.${minor}.0`, `${major}.${minor + 1}.0`]) {
      const s = sotw();
      s.send({ node: node(`s-${v}`, v), typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
      const err = await s.next().then(() => undefined, (e: Error) => e);
      expect(err?.message, v).to.match(/not supported by this control plane/);
    }
  });
});

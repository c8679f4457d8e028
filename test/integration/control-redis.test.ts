import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { JsonObject } from '../../src/config/snapshot.js';
import { applyDocuments } from '../../src/control/server/resource-state.js';
import type { StoreState } from '../../src/control/store/store-state.js';
import { RedisStateStore, REDIS_KEYS } from '../../src/control/store/redis-store.js';
import { startH1Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { client, removeDir, startCpSidecar, startTestControlPlane, tempDir, type TestCpSidecar } from '../support/control-harness.js';
import { RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';
import { backendOf } from '../support/backend-of.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];
type CP = Awaited<ReturnType<typeof startTestControlPlane>>;

/**
 * Two control-plane replicas sharing one real redis-server (AOF on), a
 * sidecar connected to replica B while operators talk to replica A.
 * The steps build on each other, in order.
 */
describe('control plane: two replicas on one redis-server (AOF)', function () {
  this.timeout(20000);
  let redis: RedisServer;
  let dataDir: string;
  let a: Started<unknown>, b: Started<unknown>, c: Started<unknown>;
  let cpA: CP | undefined, cpB: CP | undefined;
  let sc: TestCpSidecar | undefined;

  const replica = async (port?: number): Promise<CP> => startTestControlPlane({ store: await RedisStateStore.open(redis.url), port });

  before(async () => {
    dataDir = await tempDir('outrigger-redis-');
    redis = await RedisServer.start(dataDir);
    a = await startH1Echo('a');
    b = await startH1Echo('b');
    c = await startH1Echo('c');
  });
  after(async () => {
    await sc?.close();
    await cpA?.close();
    await cpB?.close();
    await redis.stop();
    await Promise.all([a.close(), b.close(), c.close()]);
    await removeDir(dataDir);
  });

  it('an apply on replica A reaches a sidecar connected to replica B within 1 s', async () => {
    cpA = await replica();
    cpB = await replica();
    await client(cpA.address).apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [a.port])) });
    sc = await startCpSidecar({ address: cpB.address, nodeId: 'redis-1' });
    const port = sc.port();
    expect(await backendOf(port)).to.equal('a');
    const t0 = Date.now();
    await client(cpA.address).apply({ documents: J(cluster('web', [b.port])) });
    await waitFor(async () => (await backendOf(port)) === 'b', 'traffic to b via replica B', 1000);
    expect(Date.now() - t0).to.be.below(1000);
    // B's view of the store is A's: same revision, same resources.
    const [la, lb] = await Promise.all([client(cpA.address).list({}), client(cpB.address).list({})]);
    expect(lb.revision).to.equal(la.revision);
    expect(lb.resources.map((r) => r.version)).to.deep.equal(la.resources.map((r) => r.version));
  });

  it('concurrent applies on both replicas serialise (no lost update)', async () => {
    const apiA = client(cpA!.address);
    const apiB = client(cpB!.address);
    const before = Number((await apiA.list({})).revision);
    await Promise.all([
      apiA.apply({ documents: J(cluster('extra-a', [a.port])) }),
      apiB.apply({ documents: J(cluster('extra-b', [b.port])) }),
    ]);
    // A learns of B's commit by pub/sub, after B's apply returned: wait for it, then nothing may be lost.
    await waitFor(async () => Number((await apiA.list({})).revision) >= before + 2, 'replica A to see both commits');
    const after = await apiA.list({ kind: 'Cluster' });
    expect(Number(after.revision)).to.equal(before + 2);
    expect(after.resources.map((r) => (r.document as { metadata: { name: string } }).metadata.name)).to.include.members(['extra-a', 'extra-b']);
    await waitFor(async () => (await apiB.list({})).revision === after.revision, 'replica B reloads');
  });

  it('an acknowledged apply survives restarting both replicas (and redis)', async () => {
    const portB = cpB!.port;
    await cpA!.close();
    await cpB!.close();
    await redis.stop();
    await redis.start();
    cpA = await replica();
    cpB = await replica(portB);
    const got = await client(cpA.address).get({ kind: 'Cluster', name: 'web' });
    expect(JSON.stringify(got.resource!.document)).to.contain(String(b.port));
    // The sidecar kept serving, reconnects to the new B and is in sync with the stored state.
    await waitFor(async () => (await client(cpB!.address).status({})).sidecars.length === 1, 'sidecar reconnects to B', 10000);
    expect(await backendOf(sc!.port())).to.equal('b');
    const t0 = Date.now();
    await client(cpA.address).apply({ documents: J(cluster('web', [a.port])) });
    await waitFor(async () => (await backendOf(sc!.port())) === 'a', 'traffic to a after restart', 1000);
    expect(Date.now() - t0).to.be.below(1000);
  });

  it('a redis restart triggers a full resync (a change whose publish was lost is picked up)', async () => {
    // Write a new revision straight into redis without publishing it: what a
    // replica that crashed between EXEC and PUBLISH (or a publish sent while
    // the subscribers were disconnected) leaves behind.
    const raw = new Redis(redis.url, { lazyConnect: true });
    await raw.connect();
    const cur = JSON.parse((await raw.get(REDIS_KEYS.state))!) as StoreState;
    const next = applyDocuments(cur, { documents: J(cluster('web', [c.port])), who: 'test', nowMs: Date.now() }, { allowEphemeralPorts: true });
    if (!next.ok) throw new Error(JSON.stringify(next.errors));
    await raw.multi().set(REDIS_KEYS.state, JSON.stringify(next.state)).set(REDIS_KEYS.revision, String(next.state.revision)).exec();
    raw.disconnect();
    // Nobody was told: the replicas still hold the old revision (they learn of changes only by a
    // publish or a resync, never by polling), so the sidecar still goes to a.
    for (const cp of [cpA!, cpB!]) expect(Number((await client(cp.address).list({})).revision)).to.equal(cur.revision);
    expect(await backendOf(sc!.port())).to.equal('a');
    await redis.stop();
    await redis.start();
    await waitFor(async () => (await backendOf(sc!.port())) === 'c', 'resync after the redis reconnect', 8000);
    for (const cp of [cpA!, cpB!]) {
      expect(Number((await client(cp.address).list({})).revision)).to.equal(next.state.revision);
      expect(cp.logs.some((l) => l.msg === 'store reconnected; full resync')).to.equal(true);
    }
    // And writes work again through either replica.
    await client(cpB!.address).apply({ documents: J(cluster('web', [b.port])) });
    await waitFor(async () => (await backendOf(sc!.port())) === 'b', 'traffic to b after the redis restart', 2000);
  });
});

import { expect } from 'chai';
import net from 'node:net';
import { toJson } from '@bufbuild/protobuf';
import { Redis } from 'ioredis';
import type { JsonObject } from '../../src/config/snapshot.js';
import { REDIS_KEYS } from '../../src/control/store/redis-store.js';
import { SidecarStatusSchema, TypeStatus_State, type StatusResponse } from '../../src/gen/outrigger/control/v1/operator_pb.js';
import { startH1Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { client, outrigger, removeDir, spawnControlPlane, startCpSidecar, tempDir, writeToken, TOKEN, type TestCpSidecar } from '../support/control-harness.js';
import { RedisServer } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];
type Spawned = Awaited<ReturnType<typeof spawnControlPlane>>;
const TTL_MS = 1000;

/** node@replica:TYPE=STATE,… per sidecar, for readable assertions. */
function summary(res: StatusResponse): string[] {
  const short = (u: string): string => u.replace('type.googleapis.com/outrigger.config.v1.', '');
  return res.sidecars.map((s) => `${s.nodeId}@${s.controlPlane} ${s.types.map((t) => `${short(t.typeUrl)}=${TypeStatus_State[t.state]}`).join(',')}`);
}

async function stop(cp: Spawned, signal: NodeJS.Signals): Promise<void> {
  if (cp.child.exitCode !== null || cp.child.signalCode !== null) return;
  await new Promise<void>((r) => {
    cp.child.once('exit', () => r());
    cp.child.kill(signal);
  });
}

/**
 * Status across replicas: two `outrigger control` processes on one real
 * redis-server (AOF), one sidecar connected to each. Each replica publishes
 * its sidecars' status to redis (an entry with a 1 s TTL here, rewritten on a
 * heartbeat and on change), and Status on either merges them. A replica
 * killed with SIGKILL drops out when its entry expires; one stopped with
 * SIGTERM removes its entry at once. The steps build on each other.
 */
describe('control plane: Status across replicas sharing redis', function () {
  this.timeout(30000);
  let redis: RedisServer;
  let dir: string;
  let tokenFile: string;
  let backend: Started<unknown>;
  let busy: net.Server;
  let cpA: Spawned, cpB: Spawned;
  let cpB2: Spawned | undefined;
  let scA: TestCpSidecar | undefined, scB: TestCpSidecar | undefined;
  const addr = (cp: Spawned): string => `127.0.0.1:${cp.port}`;
  const replica = (id: string, extra: string[] = []): Promise<Spawned> =>
    spawnControlPlane(['--store', redis.url, '--token-file', tokenFile, '--replica-id', id, '--status-ttl', `${TTL_MS}ms`, '--port', '0', ...extra]);

  before(async () => {
    dir = await tempDir('outrigger-status-replicas-');
    tokenFile = await writeToken(dir);
    redis = await RedisServer.start(dir);
    backend = await startH1Echo('a');
    busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    [cpA, cpB] = await Promise.all([replica('cp-a'), replica('cp-b')]);
  });
  after(async () => {
    await scA?.close();
    await scB?.close();
    for (const cp of [cpA, cpB, cpB2]) if (cp) await stop(cp, 'SIGTERM');
    busy.close();
    await backend.close();
    await redis.stop();
    await removeDir(dir);
  });

  it('Status on either replica (and `outrigger status`) lists both sidecars with their states; ERROR carries the NACK message', async () => {
    await client(addr(cpA)).apply({ documents: J(listener('main'), routes('main', [prefixRoute('/', 'web')]), cluster('web', [backend.port])) });
    scA = await startCpSidecar({ address: addr(cpA), nodeId: 'node-a' });
    scB = await startCpSidecar({ address: addr(cpB), nodeId: 'node-b' });
    const synced = ['node-a@cp-a Cluster=SYNCED,Listener=SYNCED,RouteConfiguration=SYNCED', 'node-b@cp-b Cluster=SYNCED,Listener=SYNCED,RouteConfiguration=SYNCED'];
    for (const cp of [cpA, cpB]) {
      await waitFor(async () => JSON.stringify(summary(await client(addr(cp)).status({}))) === JSON.stringify(synced), `both sidecars SYNCED via ${addr(cp)}`);
    }
    // A listener only node-b gets, on a port in use: node-b NACKs it, node-a is untouched.
    const extra = listener('extra', { address: { host: '127.0.0.1', port: (busy.address() as net.AddressInfo).port } });
    (extra.metadata as Record<string, unknown>).selector = { nodeId: 'node-b' };
    await client(addr(cpA)).apply({ documents: J(extra) });
    const expected = ['node-a@cp-a Cluster=SYNCED,Listener=SYNCED,RouteConfiguration=SYNCED', 'node-b@cp-b Cluster=SYNCED,Listener=ERROR,RouteConfiguration=SYNCED'];
    await waitFor(async () => JSON.stringify(summary(await client(addr(cpA)).status({}))) === JSON.stringify(expected), 'node-b ERROR seen from replica A', 5000);
    // Both replicas report the same thing: B's entries reach A through redis unchanged.
    let fromA!: StatusResponse, fromB!: StatusResponse;
    await waitFor(async () => {
      [fromA, fromB] = await Promise.all([client(addr(cpA)).status({}), client(addr(cpB)).status({})]);
      const sidecars = (r: StatusResponse): string => JSON.stringify(r.sidecars.map((s) => toJson(SidecarStatusSchema, s)));
      return sidecars(fromA) === sidecars(fromB);
    }, 'A and B agree');
    expect(fromA.controlPlanes).to.deep.equal(['cp-a', 'cp-b']);
    expect(fromB.controlPlanes).to.deep.equal(['cp-b', 'cp-a']);
    expect(fromA.error).to.equal('');
    const b = fromA.sidecars.find((s) => s.nodeId === 'node-b')!;
    expect(b).to.include({ sidecarVersion: '0.1.0', stream: 'sotw', controlPlane: 'cp-b' });
    const lds = b.types.find((t) => t.typeUrl.endsWith('.Listener'))!;
    expect(lds.error).to.match(/EADDRINUSE|address already in use/i);
    expect(lds.versionSent).to.not.equal(lds.versionAcked);
    expect(lds.versionAcked).to.not.equal('');
    for (const s of fromA.sidecars) {
      for (const t of s.types.filter((x) => x.state === TypeStatus_State.SYNCED)) {
        expect(t.versionAcked, `${s.nodeId} ${t.typeUrl}`).to.equal(t.versionSent).and.not.equal('');
        expect(t.lastAck, `${s.nodeId} ${t.typeUrl}`).to.not.equal(undefined);
        expect(t.pushLatencyMs, `${s.nodeId} ${t.typeUrl}`).to.be.greaterThan(0);
      }
    }
    // The CLI, against B: a table with the replica column, and JSON against A.
    const table = await outrigger(['status', '--control-plane', addr(cpB)], { OUTRIGGER_TOKEN: TOKEN });
    expect(table.code, table.stderr).to.equal(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).to.match(/^NODE\s+CONTROL PLANE\s+TYPE\s+SENT\s+ACKED\s+STATE\s+LAST ACK\s+PUSH LATENCY\s+ERROR$/);
    expect(lines.filter((l) => /^node-a\s+cp-a\s+\w+\s+(\w+)\s+\1\s+SYNCED\s+\S+\s+\d+ms$/.test(l))).to.have.length(3);
    expect(lines.filter((l) => /^node-b\s+cp-b\s+/.test(l))).to.have.length(3);
    // Sent and acked differ: the NACKed version was sent, the previous one is still acked.
    expect(lines.find((l) => /^node-b\s+cp-b\s+LDS\s/.test(l))).to.match(/^node-b\s+cp-b\s+LDS\s+(\w+)\s+(?!\1)\w+\s+ERROR\s.*(EADDRINUSE|address already in use)/i);
    const json = await outrigger(['status', '-o', 'json', '--control-plane', addr(cpA)], { OUTRIGGER_TOKEN: TOKEN });
    expect(json.code, json.stderr).to.equal(0);
    const nodes = (JSON.parse(json.stdout) as { sidecars: { nodeId: string; controlPlane: string }[] }).sidecars;
    expect(nodes.map((n) => `${n.nodeId}@${n.controlPlane}`)).to.deep.equal(['node-a@cp-a', 'node-b@cp-b']);
  });

  it('a replica killed with SIGKILL: its sidecar leaves Status when its entry expires (within the TTL)', async () => {
    await stop(cpB, 'SIGKILL');
    const t0 = Date.now();
    // Still listed right after the kill: the entry lives until its TTL.
    expect(summary(await client(addr(cpA)).status({})).map((s) => s.split(' ')[0])).to.deep.equal(['node-a@cp-a', 'node-b@cp-b']);
    let last!: StatusResponse;
    await waitFor(async () => {
      last = await client(addr(cpA)).status({});
      return last.sidecars.every((s) => s.nodeId !== 'node-b');
    }, 'node-b gone from Status', 3000);
    const elapsed = Date.now() - t0;
    expect(elapsed, 'gone within the TTL (plus polling slack)').to.be.at.most(TTL_MS + 500);
    expect(last.controlPlanes).to.deep.equal(['cp-a']);
    expect(summary(last)).to.deep.equal(['node-a@cp-a Cluster=SYNCED,Listener=SYNCED,RouteConfiguration=SYNCED']);
  });

  it('a replica stopped cleanly (SIGTERM) removes its entry at once, long before its TTL', async () => {
    // B comes back on its port (with a 30 s TTL) and node-b reconnects to it.
    cpB2 = await spawnControlPlane([
      '--store', redis.url, '--token-file', tokenFile, '--replica-id', 'cp-b2', '--status-ttl', '30s', '--port', String(cpB.port),
    ]);
    await waitFor(async () => summary(await client(addr(cpA)).status({})).some((s) => s.startsWith('node-b@cp-b2 ')), 'node-b via cp-b2 in Status on A', 10000);
    await stop(cpB2, 'SIGTERM');
    expect(cpB2.child.exitCode).to.equal(0);
    const st = await client(addr(cpA)).status({});
    expect(st.controlPlanes).to.deep.equal(['cp-a']);
    expect(st.sidecars.map((s) => s.nodeId)).to.deep.equal(['node-a']);
    const raw = new Redis(redis.url, { lazyConnect: true });
    await raw.connect();
    try {
      expect(await raw.exists(`${REDIS_KEYS.statusPrefix}cp-b2`)).to.equal(0);
      expect(await raw.smembers(REDIS_KEYS.replicas)).to.deep.equal(['cp-a']);
    } finally {
      raw.disconnect();
    }
  });
});

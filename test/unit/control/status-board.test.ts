import { expect } from 'chai';
import { create, toJsonString } from '@bufbuild/protobuf';
import pino from 'pino';
import { Writable } from 'node:stream';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { SidecarStatusSchema, StatusResponseSchema, TypeStatus_State, type SidecarStatus } from '../../../src/gen/outrigger/control/v1/operator_pb.js';
import { StatusBoard } from '../../../src/control/server/status-board.js';
import type { ReplicaStatusStore } from '../../../src/control/store/state-store.js';
import { FakeClock } from '../../support/fake-clock.js';

/** A shared status store in memory; entries expire on the fake clock, like redis PX. */
class MemoryReplicaStore implements ReplicaStatusStore {
  readonly entries = new Map<string, { text: string; expiresAt: number }>();
  puts: { replica: string; text: string; ttlMs: number }[] = [];
  removes: string[] = [];
  putImpl: ((replica: string) => Promise<void>) | undefined;
  readImpl: (() => Promise<Map<string, string>>) | undefined;
  constructor(private readonly clock: FakeClock) {}
  async putReplicaStatus(replica: string, text: string, ttlMs: number): Promise<void> {
    this.puts.push({ replica, text, ttlMs });
    if (this.putImpl) await this.putImpl(replica);
    this.entries.set(replica, { text, expiresAt: this.clock.monotonicMs() + ttlMs });
  }
  async replicaStatuses(): Promise<Map<string, string>> {
    if (this.readImpl) return this.readImpl();
    const out = new Map<string, string>();
    for (const [id, e] of this.entries) if (e.expiresAt > this.clock.monotonicMs()) out.set(id, e.text);
    return out;
  }
  async removeReplicaStatus(replica: string): Promise<void> {
    this.removes.push(replica);
    this.entries.delete(replica);
  }
}

function sidecar(nodeId: string, controlPlane: string, state = TypeStatus_State.SYNCED, error = ''): SidecarStatus {
  return create(SidecarStatusSchema, {
    nodeId,
    controlPlane,
    stream: 'sotw',
    sidecarVersion: '0.1.0',
    types: [{ typeUrl: 'type.googleapis.com/outrigger.config.v1.Cluster', versionSent: 'v1', versionAcked: state === TypeStatus_State.SYNCED ? 'v1' : '', state, error, pushLatencyMs: 12.5 }],
  });
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

function setup(local: () => SidecarStatus[] = () => [], id = 'r1') {
  const clock = new FakeClock();
  const store = new MemoryReplicaStore(clock);
  const logs: Record<string, unknown>[] = [];
  const logger = pino(
    { base: undefined },
    new Writable({
      write(chunk: Buffer, _e, cb) {
        logs.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        cb();
      },
    }),
  );
  const board = new StatusBoard({ identifier: id, local, store, clock, logger, ttlMs: 3000, changeDelayMs: 100 });
  return { clock, store, logs, board };
}

describe('control: replica status board (shared Status) on the injected clock', () => {
  it('publishes at start, rewrites every ttl/3, and coalesces a burst of changes into one write within the change delay', async () => {
    const { clock, store, board } = setup(() => [sidecar('n1', 'r1')]);
    board.start();
    await flush();
    expect(store.puts).to.have.length(1);
    expect(store.puts[0]).to.include({ replica: 'r1', ttlMs: 3000 });
    clock.advance(999);
    await flush();
    expect(store.puts).to.have.length(1);
    clock.advance(1);
    await flush();
    expect(store.puts).to.have.length(2);
    for (let i = 0; i < 50; i++) board.changed();
    clock.advance(99);
    await flush();
    expect(store.puts).to.have.length(2);
    clock.advance(1);
    await flush();
    expect(store.puts).to.have.length(3);
    // The heartbeat restarts from that write.
    clock.advance(999);
    await flush();
    expect(store.puts).to.have.length(3);
    clock.advance(1);
    await flush();
    expect(store.puts).to.have.length(4);
    await board.close();
  });

  it('Status merges this replica\'s live streams with the other replicas\' entries (its own stored entry is not used twice)', async () => {
    let local = [sidecar('n1', 'r1', TypeStatus_State.STALE)];
    const a = setup(() => local, 'r1');
    const otherLocal = [sidecar('n2', 'r2', TypeStatus_State.ERROR, 'listener main: EADDRINUSE'), sidecar('n0', 'r2')];
    const b = new StatusBoard({ identifier: 'r2', local: () => otherLocal, store: a.store, clock: a.clock, logger: pino({ level: 'silent' }), ttlMs: 3000 });
    const c = new StatusBoard({ identifier: 'r3', local: () => [], store: a.store, clock: a.clock, logger: pino({ level: 'silent' }), ttlMs: 3000 });
    a.board.start();
    b.start();
    c.start();
    await flush();
    local = [sidecar('n1', 'r1')]; // changed since r1 last published: Status shows the live one
    const st = await a.board.status();
    expect(st.error).to.equal('');
    expect(st.controlPlanes).to.deep.equal(['r1', 'r2', 'r3']);
    expect(st.sidecars.map((s) => `${s.nodeId}@${s.controlPlane}:${TypeStatus_State[s.types[0]!.state]}`)).to.deep.equal(['n0@r2:SYNCED', 'n1@r1:SYNCED', 'n2@r2:ERROR']);
    const n2 = st.sidecars.find((s) => s.nodeId === 'n2')!;
    expect(n2.types[0]).to.include({ error: 'listener main: EADDRINUSE', versionSent: 'v1', pushLatencyMs: 12.5 });
    expect(n2.sidecarVersion).to.equal('0.1.0');
    await Promise.all([a.board.close(), b.close(), c.close()]);
  });

  it('a sidecar that moved to another replica is listed once, where it is now connected (the old entry has not expired yet)', async () => {
    const at = (st: SidecarStatus, ms: number): SidecarStatus => ({ ...st, connectedSince: timestampFromMs(ms) });
    const a = setup(() => [at(sidecar('n1', 'r1'), 5000), at(sidecar('n3', 'r1'), 1000)], 'r1');
    // r2 was killed after publishing: n1 was on it before it reconnected to r1; n2 is still only there.
    const stale = create(StatusResponseSchema, { sidecars: [at(sidecar('n1', 'r2', TypeStatus_State.STALE), 1000), at(sidecar('n2', 'r2'), 1000)] });
    await a.store.putReplicaStatus('r2', toJsonString(StatusResponseSchema, stale), 3000);
    // r3 publishes n3 with a newer connection than r1's live stream (two sidecars with one id): both stay listed.
    const dup = create(StatusResponseSchema, { sidecars: [at(sidecar('n3', 'r3'), 9000)] });
    await a.store.putReplicaStatus('r3', toJsonString(StatusResponseSchema, dup), 3000);
    const st = await a.board.status();
    expect(st.sidecars.map((s) => `${s.nodeId}@${s.controlPlane}`)).to.deep.equal(['n1@r1', 'n2@r2', 'n3@r1', 'n3@r3']);
    await a.board.close();
  });

  it('an entry not rewritten expires after the TTL; a clean close removes it at once and writes nothing after', async () => {
    const { clock, store, board } = setup(() => [sidecar('n1', 'r1')]);
    // r9 published once and died.
    await store.putReplicaStatus('r9', JSON.stringify({ sidecars: [{ nodeId: 'ghost', controlPlane: 'r9' }] }), 3000);
    board.start();
    await flush();
    expect((await board.status()).controlPlanes).to.deep.equal(['r1', 'r9']);
    clock.advance(2999);
    await flush();
    expect((await board.status()).sidecars.map((s) => s.nodeId)).to.deep.equal(['ghost', 'n1']);
    clock.advance(1);
    await flush();
    expect((await board.status()).controlPlanes).to.deep.equal(['r1']);
    // r1 kept its entry alive with heartbeats.
    expect(store.entries.has('r1')).to.equal(true);
    await board.close();
    expect(store.removes).to.deep.equal(['r1']);
    expect(store.entries.has('r1')).to.equal(false);
    expect(clock.pending).to.equal(0);
    const puts = store.puts.length;
    board.changed();
    clock.advance(10_000);
    await flush();
    expect(store.puts.length).to.equal(puts);
    expect(clock.pending).to.equal(0);
  });

  it('close waits for a write in flight, so the removal is not undone by it', async () => {
    const { store, board } = setup(() => [sidecar('n1', 'r1')]);
    let release!: () => void;
    store.putImpl = () => new Promise<void>((r) => (release = r));
    board.start();
    await flush();
    expect(store.puts).to.have.length(1);
    const closing = board.close();
    await flush();
    expect(store.removes).to.deep.equal([]);
    release();
    await closing;
    expect(store.removes).to.deep.equal(['r1']);
    expect(store.entries.has('r1')).to.equal(false);
  });

  it('a failed write is logged once and retried on the heartbeat; an unreadable store gives this replica\'s sidecars with an error', async () => {
    const { clock, store, board, logs } = setup(() => [sidecar('n1', 'r1')]);
    store.putImpl = () => Promise.reject(new Error('connection lost'));
    board.start();
    await flush();
    clock.advance(1000);
    await flush();
    expect(store.puts).to.have.length(2);
    expect(logs.filter((l) => l.msg === 'could not publish replica status; retrying on the heartbeat')).to.have.length(1);
    store.putImpl = undefined;
    clock.advance(1000);
    await flush();
    expect(logs.some((l) => l.msg === 'replica status published again')).to.equal(true);
    store.readImpl = () => Promise.reject(new Error('connection lost'));
    let st = await board.status();
    expect(st.sidecars.map((s) => s.nodeId)).to.deep.equal(['n1']);
    expect(st.controlPlanes).to.deep.equal(['r1']);
    expect(st.error).to.match(/^status of the other replicas unavailable \(connection lost\)/);
    // A store that does not answer at all: the read gives up after the timeout (2 s) on the clock.
    store.readImpl = () => new Promise(() => {});
    const pending = board.status();
    clock.advance(2000);
    st = await pending;
    expect(st.error).to.contain('no answer from the store in 2000 ms');
    store.readImpl = undefined;
    await board.close();
  });

  it('without a shared store (file store): no timers and Status lists this replica\'s sidecars only', async () => {
    const clock = new FakeClock();
    const board = new StatusBoard({ identifier: 'solo', local: () => [sidecar('n1', 'solo')], clock, logger: pino({ level: 'silent' }) });
    board.start();
    board.changed();
    expect(clock.pending).to.equal(0);
    const st = await board.status();
    expect(st).to.deep.include({ controlPlanes: ['solo'], error: '' });
    expect(st.sidecars.map((s) => s.nodeId)).to.deep.equal(['n1']);
    await board.close();
  });
});

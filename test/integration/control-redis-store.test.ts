import { expect } from 'chai';
import { RedisStateStore } from '../../src/control/store/redis-store.js';
import { EMPTY_STATE, type StoreState } from '../../src/control/store/store-state.js';
import { removeDir, tempDir } from '../support/control-harness.js';
import { RedisServer } from '../support/redis-server.js';

/**
 * The redis store's compare-and-set, on a real redis-server: two replicas
 * (two stores, two connections) race to commit on the same revision while
 * each also writes its status entry on the same connection — the traffic a
 * replica really sends. Exactly one commit per round may win; a status write
 * between a WATCH and its MULTI used to drop the watch and let both win.
 */
describe('control plane: redis store commit is an atomic compare-and-set', function () {
  this.timeout(20000);
  let redis: RedisServer;
  let dir: string;
  let a: RedisStateStore, b: RedisStateStore;
  before(async () => {
    dir = await tempDir('outrigger-redis-cas-');
    redis = await RedisServer.start(dir);
    [a, b] = await Promise.all([RedisStateStore.open(redis.url), RedisStateStore.open(redis.url)]);
  });
  after(async () => {
    await Promise.all([a.close(), b.close()]);
    await redis.stop();
    await removeDir(dir);
  });

  const stateAt = (revision: number, who: string): StoreState => ({ ...EMPTY_STATE, revision, changedAtMs: revision, resources: [], marker: who } as StoreState);

  it('200 rounds of racing commits with status writes in between: one winner per round, no lost update', async () => {
    let revision = (await a.load()).revision;
    for (let round = 0; round < 200; round++) {
      const results = await Promise.all([
        a.commit(stateAt(revision + 1, 'a'), revision),
        a.putReplicaStatus('a', `round ${round}`, 5000),
        b.putReplicaStatus('b', `round ${round}`, 5000),
        b.commit(stateAt(revision + 1, 'b'), revision),
        a.putReplicaStatus('a', `round ${round}+`, 5000),
      ]);
      const wins = [results[0], results[3]].filter((x) => x === true).length;
      expect(wins, `round ${round}`).to.equal(1);
      const stored = await b.load();
      expect(stored.revision).to.equal(revision + 1);
      expect((stored as unknown as { marker: string }).marker).to.equal(results[0] === true ? 'a' : 'b');
      revision++;
    }
    // A stale expected revision never wins.
    expect(await a.commit(stateAt(revision + 1, 'a'), revision - 1)).to.equal(false);
    expect((await a.load()).revision).to.equal(revision);
  });
});
